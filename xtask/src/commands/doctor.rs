//! `cargo xtask doctor`: what this host has, lacks and can use.

use crate::flags::SourceOpts;
use crate::host::deps;
use crate::kernel::source::Provider;
use crate::vm::accel;
use crate::vm::qemu::Qemu;
use anyhow::Result;

pub fn run(opts: &SourceOpts) -> Result<i32> {
    let provider = Provider::new(opts.kernel_src.as_deref(), opts.kernel_tarball.as_deref())?;
    let needs = deps::needed_for(provider.needs());
    let missing = deps::missing(&needs);
    println!("host tools and files:");
    for need in &needs {
        let ok = !missing.iter().any(|m| m.what == need.what);
        println!(
            "  [{}] {:<28} (Debian package {})",
            if ok { "ok" } else { "--" },
            need.what,
            need.package
        );
    }
    println!(
        "\nkernel source: {} ({})",
        provider.origin().display(),
        provider.kind()
    );
    match Qemu::find() {
        Ok(q) => {
            println!("\nQEMU: {} ({})", q.version_text, q.path.display());
            if q.needs_smap_workaround() {
                println!(
                    "  older than 9.0: TCG guests get -cpu max,-smap (far-return bug under SMAP)."
                );
                println!("  A fixed QEMU (>= 9, e.g. Debian bookworm-backports) can be used with QEMU=/path/to/qemu-system-x86_64.");
            }
        }
        Err(e) => println!("\nQEMU: not usable: {e:#}"),
    }
    let kvm = if !accel::kvm_device_usable() {
        "no (/dev/kvm cannot be opened read-write): TCG"
    } else if accel::kvm_known_silent() {
        "no: /dev/kvm opens but a guest stayed silent on this host boot (nested KVM?): TCG"
    } else {
        "/dev/kvm opens; the first boot checks that a guest really runs, and falls back to TCG if not"
    };
    println!("KVM: {kvm}");
    if missing.is_empty() {
        println!("\nready: `cargo xtask compare` will build and boot both kernels.");
        Ok(0)
    } else {
        println!("\nmissing packages are installed by the first run when it runs as root (or with sudo).");
        Ok(1)
    }
}

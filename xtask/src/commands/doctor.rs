//! `cargo xtask doctor`: what this host has, lacks and can use.

use crate::flags::SourceOpts;
use crate::host::deps;
use crate::host::paths;
use crate::kernel::source::{Layout, Provider};
use crate::kernel::Variant;
use crate::vm::accel::{self, KvmProbe, KvmVerdict};
use crate::vm::qemu::{Guest, Qemu};
use anyhow::{Context, Result};
use std::path::PathBuf;

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
    println!("KVM: {}", kvm_line(&provider));
    if missing.is_empty() {
        println!("\nready: `cargo xtask compare` will build and boot both kernels.");
        Ok(0)
    } else {
        println!("\nmissing packages are installed by the first run when it runs as root (or with sudo).");
        Ok(1)
    }
}

/// The KVM verdict from the same probe a run uses: one tiny KVM boot of a
/// kernel built here, which must print its first line in time.
fn kvm_line(provider: &Provider) -> String {
    match probe(provider) {
        Ok(KvmVerdict::Works) => {
            "works (a KVM guest's kernel printed its first line in time)".into()
        }
        Ok(KvmVerdict::Fails(reason)) => format!("not usable: {reason}; runs use TCG"),
        Err(e) => format!("not probed: {e:#}"),
    }
}

fn probe(provider: &Provider) -> Result<KvmVerdict> {
    let probe = KvmProbe::host();
    if let Some(reason) = (!probe.device_usable()).then(|| probe.why_not()).flatten() {
        return Ok(KvmVerdict::Fails(reason));
    }
    let kernel = built_kernel(provider).context(
        "no kernel built yet to boot (run `cargo xtask build --variant vanilla`, then doctor again)",
    )?;
    let qemu = Qemu::find()?;
    let dir = paths::results();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let initrd = dir.join("kvm-probe.cpio");
    accel::empty_initramfs(&initrd)?;
    let guest = Guest {
        extra_args: Vec::new(),
        qemu: &qemu,
        kernel: &kernel,
        initrd: &initrd,
        append: String::new(),
    };
    accel::probe_kvm(&probe, &guest, &dir.join("kvm-probe-console.log"))
}

/// A vmlinux built from this source, vanilla first.
fn built_kernel(provider: &Provider) -> Option<PathBuf> {
    let layout = Layout::new(provider);
    Variant::BOTH
        .iter()
        .map(|v| layout.build(*v).join("vmlinux"))
        .find(|p| p.is_file())
}

//! PID 1 inside the test VM: mount the pseudo file systems, run the suite
//! on the console, then end the VM with reboot(RB_AUTOBOOT) (QEMU runs with
//! -no-reboot). PID 1 must never exit: that panics the kernel.

use crate::options::{Action, Options};
use crate::suite;
use std::ffi::CString;

fn mount(source: &str, target: &str, fstype: &str) {
    let _ = std::fs::create_dir_all(target);
    let (s, t, f) = (
        CString::new(source).unwrap(),
        CString::new(target).unwrap(),
        CString::new(fstype).unwrap(),
    );
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    if r != 0 && crate::sys::errno() != libc::EBUSY {
        println!(
            "# validator mount {fstype} on {target} failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The kernel opens /dev/console as fds 0-2 only if the initramfs has it;
/// otherwise take it from the devtmpfs just mounted.
fn ensure_console() {
    if unsafe { libc::fcntl(1, libc::F_GETFD) } >= 0 {
        return;
    }
    let path = CString::new("/dev/console").unwrap();
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if fd >= 0 {
        for target in 0..3 {
            unsafe { libc::dup2(fd, target) };
        }
        if fd > 2 {
            unsafe { libc::close(fd) };
        }
    }
}

pub fn run() -> ! {
    mount("proc", "/proc", "proc");
    mount("sysfs", "/sys", "sysfs");
    mount("devtmpfs", "/dev", "devtmpfs");
    mount("tmpfs", "/tmp", "tmpfs");
    ensure_console();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let filter_file = std::fs::read_to_string(contract::initramfs::FILTER_FILE).ok();
    let code = match Options::for_guest(&cmdline, filter_file) {
        Ok(opts) => run_options(&opts),
        Err(e) => {
            println!("# validator: {e}");
            2
        }
    };
    kmemleak_report();
    println!("# validator exit status {code}");
    end_vm();
}

/// Does what the kernel command line asked; returns the exit status.
fn run_options(opts: &Options) -> i32 {
    match opts.action {
        Action::Shell => exec_shell(),
        Action::Bench => return crate::bench::run(),
        Action::Run | Action::List | Action::Help => {}
    }
    let asked = crate::scenarios::Asked {
        stress: opts.stress.is_some(),
        criu: opts.criu,
    };
    match crate::select(opts, asked) {
        Ok(selected) => suite::run(&selected, opts),
        Err(e) => {
            println!("# validator: {e}");
            2
        }
    }
}

/// Replaces PID 1 with /bin/sh (a debugging initramfs has one); if that
/// is impossible, says why and returns so the suite runs instead.
fn exec_shell() {
    if !std::path::Path::new("/bin/sh").exists() {
        println!("# validator: validator.shell given but there is no /bin/sh; running the suite");
        return;
    }
    let sh = CString::new("/bin/sh").unwrap();
    let argv = [sh.as_ptr(), std::ptr::null()];
    unsafe { libc::execv(sh.as_ptr(), argv.as_ptr()) };
    println!(
        "# validator exec /bin/sh failed: {}",
        std::io::Error::last_os_error()
    );
}

/// On a kernel with kmemleak (the debug flavour): scan once the run is
/// over and print every finding as `# kmemleak: ...`, which the harness
/// counts. Objects younger than kmemleak's minimum age (5 s) are not
/// reported, so wait that long first. Elsewhere: nothing.
fn kmemleak_report() {
    const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";
    // sysfs has this directory only with CONFIG_DEBUG_FS.
    if !std::path::Path::new("/sys/kernel/debug").is_dir() {
        return;
    }
    mount("debugfs", "/sys/kernel/debug", "debugfs");
    if !std::path::Path::new(KMEMLEAK).exists() {
        return;
    }
    crate::sys::sleep_ms(6000);
    if let Err(e) = std::fs::write(KMEMLEAK, "scan") {
        println!("# kmemleak: scan failed: {e}");
        return;
    }
    let found = std::fs::read_to_string(KMEMLEAK).unwrap_or_default();
    for line in found.lines() {
        println!("# kmemleak: {}", line.trim_end());
    }
    let objects = found
        .lines()
        .filter(|l| l.starts_with("unreferenced object"))
        .count();
    println!("# kmemleak: {objects} unreferenced object(s) after the run");
}

/// sync and reboot(RB_AUTOBOOT): with -no-reboot QEMU exits.
fn end_vm() -> ! {
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
    loop {
        unsafe { libc::pause() };
    }
}

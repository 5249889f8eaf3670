//! PID 1 inside the test VM: mount the pseudo file systems, run the suite
//! on the console, then end the VM with reboot(RB_AUTOBOOT) (QEMU runs with
//! -no-reboot). PID 1 must never exit: that panics the kernel.

use crate::scenarios;
use crate::suite::{self, Options};
use std::ffi::CString;
use std::time::Duration;

const DEFAULT_TIMEOUT_S: u64 = 20;

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

/// `validator.<key>=value` or bare `validator.<key>` on the kernel command line.
pub fn cmdline_option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    let full = format!("validator.{key}");
    cmdline.split_whitespace().find_map(|word| {
        if word == full {
            Some("")
        } else {
            word.strip_prefix(&full)
                .and_then(|rest| rest.strip_prefix('='))
        }
    })
}

pub fn run() -> ! {
    mount("proc", "/proc", "proc");
    mount("sysfs", "/sys", "sysfs");
    mount("devtmpfs", "/dev", "devtmpfs");
    mount("tmpfs", "/tmp", "tmpfs");
    ensure_console();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline_option(&cmdline, "shell").is_some() && std::path::Path::new("/bin/sh").exists() {
        let sh = CString::new("/bin/sh").unwrap();
        let argv = [sh.as_ptr(), std::ptr::null()];
        unsafe { libc::execv(sh.as_ptr(), argv.as_ptr()) };
        println!(
            "# validator exec /bin/sh failed: {}",
            std::io::Error::last_os_error()
        );
    }
    if cmdline_option(&cmdline, "bench").is_some() {
        let code = crate::bench::run();
        println!("# validator exit status {code}");
        end_vm();
    }
    let timeout = cmdline_option(&cmdline, "timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or(DEFAULT_TIMEOUT_S);
    let filter = cmdline_option(&cmdline, "filter");
    let selected = scenarios::select(filter);
    let code = suite::run(
        &selected,
        &Options {
            timeout: Duration::from_secs(timeout),
            json: false,
        },
    );
    println!("# validator exit status {code}");
    end_vm();
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

#[cfg(test)]
mod tests {
    use super::cmdline_option;

    #[test]
    fn parses_cmdline_options() {
        let c = "console=ttyS0 validator.filter=set_compat validator.timeout=5 validator.shell";
        assert_eq!(cmdline_option(c, "filter"), Some("set_compat"));
        assert_eq!(cmdline_option(c, "timeout"), Some("5"));
        assert_eq!(cmdline_option(c, "shell"), Some(""));
        assert_eq!(cmdline_option("validator.shellx", "shell"), None);
    }
}

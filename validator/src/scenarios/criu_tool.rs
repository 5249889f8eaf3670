//! CRIU itself (Debian's criu 3.17, amd64, built with ia32 compat
//! checkpoint/restore), run only when asked (`--criu`; `cargo xtask run
//! --flavour criu` asks and packs criu into the initramfs): `criu check`,
//! then a checkpoint and restore of a running i386 busybox shell loop that
//! writes a counter to a file, started by plain execve (an ia32 task, on
//! both kernels) and through compat-exec (a 64-bit process switched with
//! ARCH_SET_COMPAT: patched only). The restored shell must count on from
//! where it was dumped, with the same /proc/PID/maps, and end with the
//! loop's own exit status when told to stop.
//!
//! A criu command that fails names its exit status as the reason
//! (`criu-dump-exit=1`); the diagnostics carry the `Error` lines of its log.

use crate::runner::{Checks, Expect, Failure, Outcome, Scenario};
use crate::scenarios::common::{
    compat_exec_refusal, require_programs, BUSYBOX_I386, COMPAT_EXEC, CRIU,
};
use crate::scenarios::series::series;
use crate::sys::{self, Exit};
use crate::{diag, fail, fail_because};
use std::time::Duration;

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "criu_tool_check",
        description: "Only with --criu (`cargo xtask run --flavour criu`): `criu check --feature compat_cr` (ia32 \
                      checkpoint/restore) exits 0 in the guest; what `criu check` and `criu check --all` report \
                      missing is printed, not judged",
        proves: "CRIU's own probe of ia32 checkpoint/restore (it maps a 32-bit vDSO with ARCH_MAP_VDSO_32, which \
                 the series touches) passes on the patched kernel as on vanilla.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: criu_tool_check,
    },
    Scenario {
        id: "criu_tool_dump_restore_i386",
        description: "Only with --criu: criu dump and restore of an i386 busybox shell loop started by plain \
                      execve, writing a counter: the restored shell counts on from the dumped value with the \
                      same /proc/PID/maps, and exits 7 when told to stop",
        proves: "CRIU's compat restore (a 64-bit restorer that becomes an ia32 task through ARCH_MAP_VDSO_32, \
                 today's main user of that interface) still works with the series.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: criu_tool_dump_restore_i386,
    },
    series(
        "criu_tool_dump_restore_compat_exec",
        "Only with --criu: the same dump and restore of the loop run through compat-exec (a 64-bit process \
         switched with ARCH_SET_COMPAT, then running the i386 busybox)",
        "A process switched by the new interface is an ordinary ia32 task to CRIU: it is checkpointed and \
         restored like one.",
        "EINVAL",
        criu_tool_dump_restore_compat_exec,
    ),
];

/// What the criu scenarios may take beyond the per-scenario timeout:
/// each criu command takes seconds under TCG.
pub const EXTRA_TIME: Duration = Duration::from_secs(100);

pub fn is_criu_tool(s: &Scenario) -> bool {
    SCENARIOS.iter().any(|c| c.id == s.id)
}

/// Images, logs, applet links and the counter.
const WORK: &str = "/tmp/criu";
/// How long one criu command may take under TCG.
const CRIU_MS: u64 = 30_000;
/// The loop's exit status once it sees the stop file.
const LOOP_EXIT: i32 = 7;
/// The i386 shell: counts (in its own memory) until told to stop.
const LOOP: &str =
    "i=0; while [ ! -e /tmp/criu/stop ]; do i=$((i+1)); echo $i >/tmp/criu/counter; \
                    usleep 50000; done; exit 7";
/// The applets the loop runs as programs (`[`, echo are ash builtins).
const APPLETS: &[&str] = &["sh", "usleep"];

/// Runs criu ARGS in WORK with its output in WORK/NAME.out; prints the
/// command, its exit and its output's last lines.
fn criu(name: &str, args: &[&str]) -> Result<Exit, Failure> {
    let mut argv = vec![CRIU];
    argv.extend(args);
    let out = format!("{WORK}/{name}.out");
    let program = sys::Program {
        path: CRIU,
        argv: &argv,
        env: &["PATH=/usr/sbin:/bin"],
        dir: WORK,
        stdin: "/dev/null",
        stdout: &out,
        stderr: &out,
        new_session: false,
    };
    let exit = sys::run_program(&program, CRIU_MS)
        .map_err(|e| Failure::Fail(format!("cannot run {CRIU}: {e}")))?;
    diag!("{}: {exit}", argv.join(" "));
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(20)..] {
        diag!("  {line}");
    }
    Ok(exit)
}

/// The lines of a criu log (in the image folder) that say why it failed.
fn show_log_errors(log: &str) {
    let path = format!("{WORK}/images/{log}");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Error") || l.contains("rror (") || l.contains("Warn"))
        .collect();
    diag!(
        "{path}: {} lines, {} error/warning lines",
        text.lines().count(),
        errors.len()
    );
    for line in &errors[errors.len().saturating_sub(25)..] {
        diag!("  {line}");
    }
}

/// Fails naming criu's exit status (`criu-dump-exit=1`) unless it is 0.
fn require_success(step: &str, exit: Exit) -> Outcome {
    match exit {
        Exit::Code(0) => Ok(()),
        Exit::Code(code) => {
            fail_because!(format!("criu-{step}-exit={code}"), "criu {step}: {exit}")
        }
        Exit::Signal(sig) => fail_because!(sys::signal_name(sig), "criu {step}: {exit}"),
        Exit::TimedOut => fail_because!("timeout", "criu {step}: {exit} after {CRIU_MS} ms"),
    }
}

/// The folder, a fresh image directory, the applet links, and the
/// loopback CRIU probes with (the guest's init configures no network).
fn prepare() -> Outcome {
    require_programs(&[CRIU, BUSYBOX_I386, COMPAT_EXEC])?;
    let _ = std::fs::remove_dir_all(WORK);
    for dir in ["images", "bin"] {
        let dir = format!("{WORK}/{dir}");
        std::fs::create_dir_all(&dir).map_err(|e| Failure::Fail(format!("mkdir {dir}: {e}")))?;
    }
    for applet in APPLETS {
        let link = format!("{WORK}/bin/{applet}");
        std::os::unix::fs::symlink(BUSYBOX_I386, &link)
            .map_err(|e| Failure::Fail(format!("symlink {link}: {e}")))?;
    }
    if let Err(e) = sys::loopback_up() {
        fail!("bringing lo up: {}", sys::errno_name(e));
    }
    mount_devpts()
}

/// `criu check` opens /dev/ptmx, which needs a devpts at /dev/pts (the
/// validator's init mounts none); a second mount is EBUSY, and fine.
fn mount_devpts() -> Outcome {
    let _ = std::fs::create_dir_all("/dev/pts");
    let r = unsafe {
        libc::mount(
            c"devpts".as_ptr(),
            c"/dev/pts".as_ptr(),
            c"devpts".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    match sys::errno() {
        _ if r == 0 => Ok(()),
        libc::EBUSY => Ok(()),
        e => fail!("mount devpts on /dev/pts: {}", sys::errno_name(e)),
    }
}

fn criu_tool_check() -> Outcome {
    prepare()?;
    // For the record, not the verdict: what the whole self-test finds
    // missing in this small guest kernel (docs/criu.md says why none of
    // it matters to the dump and restore below).
    criu("check", &["check"])?;
    criu("check-all", &["check", "--all"])?;
    let compat = criu("check-compat", &["check", "--feature", "compat_cr"])?;
    require_success("check-compat", compat)
}

fn criu_tool_dump_restore_i386() -> Outcome {
    dump_restore(&[BUSYBOX_I386, "sh", "-c", LOOP])
}

fn criu_tool_dump_restore_compat_exec() -> Outcome {
    dump_restore(&[COMPAT_EXEC, BUSYBOX_I386, "sh", "-c", LOOP])
}

/// The counter the loop last wrote, if any.
fn counter() -> Option<u64> {
    std::fs::read_to_string(format!("{WORK}/counter"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Polls for up to `ms` until the counter exceeds `above`; None if not.
fn counter_above(above: u64, ms: u64) -> Option<u64> {
    for _ in 0..ms / 20 {
        match counter() {
            Some(n) if n > above => return Some(n),
            _ => sys::sleep_ms(20),
        }
    }
    None
}

/// Waits until the freshly started loop has counted past 3; if it ends
/// (or hangs) first, returns how it ended.
fn wait_counting(pid: i32) -> Result<u64, Exit> {
    for _ in 0..500 {
        if let Some(n) = counter().filter(|n| *n > 3) {
            return Ok(n);
        }
        if let Ok(Some(exit)) = sys::try_wait(pid) {
            return Err(exit);
        }
        sys::sleep_ms(20);
    }
    Err(sys::wait_exit(pid, 10))
}

/// Starts `argv` in a session of its own (CRIU dumps a whole session),
/// dumps it, restores it, and checks that it counts on and exits right.
fn dump_restore(argv: &[&str]) -> Outcome {
    prepare()?;
    // The restored tree is reparented to us (criu restore -d exits), so
    // that we can wait for its exit status.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let stderr = format!("{WORK}/loop.err");
    let path = format!("PATH={WORK}/bin");
    let program = sys::Program {
        path: argv[0],
        argv,
        env: &[&path, "HOME=/", "LANG=C"],
        dir: WORK,
        stdin: "/dev/null",
        stdout: "/dev/null",
        stderr: &stderr,
        new_session: true,
    };
    let pid = sys::spawn_program(&program).map_err(Failure::Fail)?;
    let started = match wait_counting(pid) {
        Ok(n) => n,
        Err(exit) => {
            let text = std::fs::read_to_string(&stderr).unwrap_or_default();
            compat_exec_refusal(exit, &text)?;
            fail!("the loop {pid} did not count to 4 in 10 s: {exit}; stderr {text:?}");
        }
    };
    diag!("loop pid {pid} counting ({started})");
    let result = checkpoint_and_restore(pid);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = sys::try_wait(pid);
    result
}

/// Reaps what criu killed besides the loop (a `usleep` child of the
/// loop, reparented to us): a zombie keeps its session and group id, the
/// loop's pid, and criu's restore then cannot take that pid back
/// ("Can't fork for PID: File exists"). Waits until we have no child.
fn reap_orphans() {
    let mut status = 0;
    for _ in 0..100 {
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match r {
            r if r > 0 => diag!("reaped {r}, killed with the dumped loop"),
            0 => sys::sleep_ms(20),
            _ => return,
        }
    }
}

/// Dumps `pid` (criu kills it), restores it, then checks the counter, the
/// maps and the exit status.
fn checkpoint_and_restore(pid: i32) -> Outcome {
    let before = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let pid_text = pid.to_string();
    let dump = criu(
        "dump",
        &[
            "dump", "-t", &pid_text, "-D", "images", "-v4", "-o", "dump.log",
        ],
    )?;
    if dump != Exit::Code(0) {
        show_log_errors("dump.log");
    }
    require_success("dump", dump)?;
    let dumped = sys::wait_exit(pid, 2000);
    let at_dump = counter().unwrap_or(0);
    diag!("after the dump: the loop {dumped}, counter {at_dump}");
    reap_orphans();
    let restore = criu(
        "restore",
        &["restore", "-D", "images", "-d", "-v4", "-o", "restore.log"],
    )?;
    if restore != Exit::Code(0) {
        show_log_errors("restore.log");
    }
    require_success("restore", restore)?;
    let mut c = Checks::default();
    let continued = counter_above(at_dump, 10_000);
    c.check_because(
        continued.is_some(),
        "counter-stuck",
        format!("the restored loop counts on from {at_dump} (now {continued:?})"),
    );
    compare_maps(&mut c, pid, &before);
    check_exit(&mut c, pid);
    c.finish()
}

/// The restored process's memory layout against the dumped one: the same
/// pages with the same permissions. Not compared: how they are cut into
/// VMAs (criu's restorer merges neighbours the loader had split, and the
/// bss with a heap right after it), and the [vsyscall] gate, which a task
/// restored from criu's 64-bit restorer keeps listed (noted, on both
/// kernels alike).
fn compare_maps(c: &mut Checks, pid: i32, before: &str) {
    let after = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    for line in before.lines() {
        diag!("dumped maps: {line}");
    }
    for line in after.lines().filter(|l| !before.contains(*l)) {
        diag!("restored maps, not in the dumped ones: {line}");
    }
    let (old, new) = (layout(before), layout(&after));
    c.check_because(
        !old.is_empty() && old == new,
        "maps-differ",
        format!(
            "/proc/{pid}/maps after the restore has the dumped pages and permissions: {new:x?}"
        ),
    );
}

/// Address ranges with their permissions, neighbours of equal permissions
/// merged, [vsyscall] left out.
fn layout(maps: &str) -> Vec<(u64, u64, String)> {
    let mut out: Vec<(u64, u64, String)> = Vec::new();
    for line in maps.lines().filter(|l| !l.ends_with("[vsyscall]")) {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let parse = |x| u64::from_str_radix(x, 16).unwrap_or(0);
        let (start, end) = (parse(start), parse(end));
        match out.last_mut() {
            Some(last) if last.1 == start && last.2 == perms => last.1 = end,
            _ => out.push((start, end, perms.to_string())),
        }
    }
    out
}

/// Tells the restored loop to stop; it must exit with LOOP_EXIT, and be
/// ours to wait for (reparented to this subreaper).
fn check_exit(c: &mut Checks, pid: i32) {
    let stop = format!("{WORK}/stop");
    if let Err(e) = std::fs::write(&stop, "") {
        c.check(false, format!("write {stop}: {e}"));
        return;
    }
    let mut exit = Ok(None);
    for _ in 0..250 {
        exit = sys::try_wait(pid);
        if !matches!(exit, Ok(None)) {
            break;
        }
        sys::sleep_ms(20);
    }
    match exit {
        Ok(Some(e)) => c.check_because(
            e == Exit::Code(LOOP_EXIT),
            "exit-status",
            format!(
                "the restored loop, told to stop, ended with {e} (want exit status {LOOP_EXIT:#x})"
            ),
        ),
        Ok(None) => c.check_because(
            false,
            "timeout",
            "the restored loop did not stop within 5 s",
        ),
        Err(e) => c.check(
            false,
            format!(
                "waitpid({pid}) of the restored loop: {}",
                sys::errno_name(e)
            ),
        ),
    }
}

//! Real programs: Debian's unmodified i386 busybox, run by compat-exec (a
//! 64-bit process that switches itself with ARCH_SET_COMPAT and starts the
//! program as an ia32 execve would) and, for reference, by a plain ia32
//! execve of the same binary in the same VM. The two runs must give the
//! same stdout, stderr and exit status, byte for byte.
//!
//! Every command runs with the same environment, in the same folder, with
//! PATH holding only links to the i386 busybox, so that the shells' children
//! are i386 busybox too. On a kernel without the series compat-exec stops
//! before touching anything, with status 125 and `ARCH_SET_COMPAT is not
//! supported by this kernel: EINVAL`: the scenario fails on that errno.

use crate::diag;
use crate::runner::{Checks, Failure, Outcome, Scenario};
use crate::scenarios::common::{compat_exec_refusal, require_programs, BUSYBOX_I386, COMPAT_EXEC};
use crate::scenarios::series::series;
use crate::sys::{self, FOUR_GIB};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

pub const SCENARIOS: &[Scenario] = &[
    series(
        "busybox_echo",
        "i386 busybox `echo hello world` through compat-exec and by plain execve: same output and status",
        "The simplest real program: an unmodified i386 binary starts, writes and exits in a switched 64-bit process.",
        "EINVAL",
        echo,
    ),
    series(
        "busybox_exit_status",
        "i386 busybox `true`, `false` and `sh -c 'exit 7'` through compat-exec and by plain execve: same statuses",
        "The exit status of the 32-bit program is the process's: nothing of the 64-bit loader is left to change it.",
        "EINVAL",
        exit_status,
    ),
    series(
        "busybox_cat",
        "i386 busybox `cat` of a file, of stdin, and of a missing file (stderr, status 1): same bytes both ways",
        "Descriptors 0-2 and file reads pass through the switch unchanged.",
        "EINVAL",
        cat,
    ),
    series(
        "busybox_sha256sum",
        "i386 busybox `sha256sum` of 4 MiB of generated data: same digest both ways",
        "Sustained 32-bit computation and large reads in the switched process.",
        "EINVAL",
        sha256sum,
    ),
    series(
        "busybox_sort_uniq",
        "i386 busybox `sort -n` and `uniq -c` of 20000 generated lines: same output both ways",
        "A program that allocates (brk and mmap placed below 4 GiB after the switch) and sorts real data.",
        "EINVAL",
        sort_uniq,
    ),
    series(
        "busybox_awk",
        "i386 busybox `awk` arithmetic (floating point, 32-bit %d, string functions): same output both ways",
        "x87/SSE floating point and integer formatting behave as in an ia32 execve.",
        "EINVAL",
        awk,
    ),
    series(
        "busybox_date",
        "i386 busybox `date +%s` through compat-exec and by plain execve agree within a second with the \
         validator's 64-bit clock",
        "clock_gettime of a 32-bit program goes through the 32-bit vDSO the switch mapped; a wrong vvar would \
         give a wrong time.",
        "EINVAL",
        date,
    ),
    series(
        "busybox_sleep",
        "i386 busybox `sleep 0.2`: same output and status both ways, and at least 200 ms elapse through compat-exec",
        "nanosleep (clock_nanosleep with 32-bit time) from the switched process really sleeps.",
        "EINVAL",
        sleep,
    ),
    series(
        "busybox_sh_pipeline",
        "i386 busybox `sh -c` with pipelines (echo | tr | wc, seq | awk): same output both ways",
        "fork, pipe and execve of i386 children from a shell that lives in a switched 64-bit process.",
        "EINVAL",
        sh_pipeline,
    ),
    series(
        "busybox_trap_usr1",
        "i386 busybox `sh -c 'trap \"echo got USR1\" USR1; kill -USR1 $$'`: the trap runs, same output both ways",
        "A signal delivered to 32-bit code of the switched process returns through busybox's restorer or \
         the 32-bit vDSO's.",
        "EINVAL",
        trap_usr1,
    ),
    series(
        "busybox_ls_proc_self",
        "i386 busybox `sh -c 'ls /proc/self/'`: same listing both ways",
        "procfs sees the switched process like any other.",
        "EINVAL",
        ls_proc_self,
    ),
    series(
        "busybox_process_tree",
        "i386 busybox `sh -c 'sh -c \"echo child\"; echo parent'`: a process tree under the switched shell, same \
         output both ways",
        "fork and execve from inside the switched process: the children are ordinary ia32 processes.",
        "EINVAL",
        process_tree,
    ),
    series(
        "busybox_proc_self_exe",
        "i386 busybox `readlink /proc/self/exe`, `cat /proc/self/comm`, `cat /proc/self/cmdline`: same both ways",
        "compat-exec points /proc/self/exe, comm and the argument bounds at the program (PR_SET_MM_MAP), as \
         execve would.",
        "EINVAL",
        proc_self_exe,
    ),
    series(
        "busybox_maps_below_4g",
        "i386 busybox `cat /proc/self/maps` through compat-exec: nothing at or above 4 GiB (compat-exec keeps \
         nothing), and the same mappings by name and permissions as a plain ia32 execve",
        "After the switch and compat-exec's clean-up the process is indistinguishable from an ia32 task: no 64-bit \
         image, stack, heap, vDSO or [vsyscall] left.",
        "EINVAL",
        maps_below_4g,
    ),
];

/// The working folder: inputs, and `bin/` with the applet links.
const WORK: &str = "/tmp/real-programs";
/// The applets the commands and their shells call.
const APPLETS: &[&str] = &[
    "sh",
    "echo",
    "true",
    "false",
    "cat",
    "sha256sum",
    "sort",
    "uniq",
    "awk",
    "date",
    "sleep",
    "tr",
    "wc",
    "seq",
    "ls",
    "kill",
    "readlink",
];

/// One run of the i386 busybox: its status as text, stdout and stderr.
struct Ran {
    exit: sys::Exit,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Ran {
    /// The exit as the diagnostics say it.
    fn status(&self) -> String {
        match self.exit {
            sys::Exit::Code(code) => format!("exit status {code}"),
            sys::Exit::Signal(sig) => format!("killed by {}", sys::signal_name(sig)),
            sys::Exit::TimedOut => format!("timed out after {RUN_MS} ms"),
        }
    }
}

/// What stdin is opened on: /dev/null or a file of the working folder.
#[derive(Clone, Copy)]
enum Input {
    Null,
    File(&'static str),
}

#[derive(Clone, Copy, PartialEq)]
enum Via {
    Execve,
    CompatExec,
}

/// Skips unless both programs are there, then creates the working folder.
fn prepare() -> Outcome {
    require_programs(&[COMPAT_EXEC, BUSYBOX_I386])?;
    let bin = format!("{WORK}/bin");
    std::fs::create_dir_all(&bin).map_err(|e| Failure::Fail(format!("mkdir {bin}: {e}")))?;
    for applet in APPLETS {
        let link = format!("{bin}/{applet}");
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(BUSYBOX_I386, &link)
                .map_err(|e| Failure::Fail(format!("symlink {link}: {e}")))?;
        }
    }
    Ok(())
}

/// How long one run may take (sha256sum of 4 MiB under TCG takes seconds).
const RUN_MS: u64 = 15_000;

/// Runs busybox-i386 ARGS either way, with a fixed environment; stdout
/// and stderr go to files in the working folder.
fn run(via: Via, args: &[&str], input: Input) -> Result<Ran, Failure> {
    let mut argv = match via {
        Via::Execve => vec![BUSYBOX_I386],
        Via::CompatExec => vec![COMPAT_EXEC, BUSYBOX_I386],
    };
    argv.extend(args);
    let stdin = match input {
        Input::Null => "/dev/null".to_string(),
        Input::File(name) => format!("{WORK}/{name}"),
    };
    let (stdout, stderr) = (format!("{WORK}/stdout"), format!("{WORK}/stderr"));
    let path_var = format!("PATH={WORK}/bin");
    let program = sys::Program {
        path: argv[0],
        argv: &argv,
        env: &[&path_var, "HOME=/", "LANG=C"],
        dir: WORK,
        stdin: &stdin,
        stdout: &stdout,
        stderr: &stderr,
        new_session: false,
    };
    let exit = sys::run_program(&program, RUN_MS)
        .map_err(|e| Failure::Fail(format!("cannot run {}: {e}", argv.join(" "))))?;
    let read = |f: &str| std::fs::read(f).map_err(|e| Failure::Fail(format!("read {f}: {e}")));
    Ok(Ran {
        exit,
        stdout: read(&stdout)?,
        stderr: read(&stderr)?,
    })
}

/// Fails on compat-exec's refusal to switch (EINVAL on vanilla).
fn refused(ran: &Ran) -> Outcome {
    compat_exec_refusal(ran.exit, &String::from_utf8_lossy(&ran.stderr))
}

/// Runs ARGS by plain execve, then through compat-exec; fails on a refused
/// switch, else returns both runs.
fn both(args: &[&str], input: Input) -> Result<(Ran, Ran), Failure> {
    prepare()?;
    let native = run(Via::Execve, args, input)?;
    let compat = run(Via::CompatExec, args, input)?;
    refused(&compat)?;
    Ok((native, compat))
}

/// Checks that the two runs of `args` are byte-identical, showing both.
fn check_same(c: &mut Checks, args: &[&str], native: &Ran, compat: &Ran) {
    let shown = args.join(" ");
    for (name, ran) in [("execve", native), ("compat-exec", compat)] {
        diag!(
            "{name}: {shown}: {}, stdout {} bytes {}, stderr {} bytes {}",
            ran.status(),
            ran.stdout.len(),
            excerpt(&ran.stdout),
            ran.stderr.len(),
            excerpt(&ran.stderr)
        );
    }
    c.check(
        native.exit == compat.exit,
        format!("`{shown}`: {} both ways", compat.status()),
    );
    c.check(
        native.stdout == compat.stdout,
        format!("`{shown}`: same stdout"),
    );
    c.check(
        native.stderr == compat.stderr,
        format!("`{shown}`: same stderr"),
    );
}

/// The first 120 bytes, quoted, as a diagnostic shows them.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
    let more = if bytes.len() > 120 { "..." } else { "" };
    format!("{:?}{more}", text)
}

/// Compares each command in turn (all of them, then fails on the first
/// difference).
fn compare(commands: &[(&[&str], Input)]) -> Outcome {
    let mut c = Checks::default();
    for (args, input) in commands {
        let (native, compat) = both(args, *input)?;
        check_same(&mut c, args, &native, &compat);
    }
    c.finish()
}

/// Writes `name` in the working folder unless it is there.
fn input_file(name: &str, make: impl FnOnce() -> Vec<u8>) -> Outcome {
    let path = format!("{WORK}/{name}");
    if Path::new(&path).exists() {
        return Ok(());
    }
    std::fs::write(&path, make()).map_err(|e| Failure::Fail(format!("write {path}: {e}")))
}

/// A fixed pseudo-random sequence (xorshift64), so runs are reproducible.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn echo() -> Outcome {
    compare(&[(&["echo", "hello", "world"], Input::Null)])
}

fn exit_status() -> Outcome {
    compare(&[
        (&["true"], Input::Null),
        (&["false"], Input::Null),
        (&["sh", "-c", "exit 7"], Input::Null),
    ])
}

fn cat() -> Outcome {
    prepare()?;
    input_file("text", || {
        b"line one\nline two\n\tTabbed \\ line\n".to_vec()
    })?;
    compare(&[
        (&["cat", "text"], Input::Null),
        (&["cat"], Input::File("text")),
        (&["cat", "/nonexistent"], Input::Null),
    ])
}

fn sha256sum() -> Outcome {
    prepare()?;
    input_file("big", || pseudo_random(4 << 20))?;
    compare(&[(&["sha256sum", "big"], Input::Null)])
}

fn sort_uniq() -> Outcome {
    prepare()?;
    let numbers = || -> Vec<u8> {
        (0..20000u64)
            .map(|i| format!("{}\n", (i * 7919) % 1013))
            .collect::<String>()
            .into_bytes()
    };
    input_file("numbers", numbers)?;
    input_file("sorted", || {
        let mut lines: Vec<u64> = (0..20000u64).map(|i| (i * 7919) % 1013).collect();
        lines.sort();
        lines
            .iter()
            .map(|n| format!("{n}\n"))
            .collect::<String>()
            .into_bytes()
    })?;
    compare(&[
        (&["sort", "-n", "numbers"], Input::Null),
        (&["uniq", "-c", "sorted"], Input::Null),
    ])
}

fn awk() -> Outcome {
    compare(&[(
        &[
            "awk",
            r#"BEGIN { x = 65536 * 32768 + 7 * 6; printf "%d %.3f %d %s %d %.6e\n", x, 10 / 4, int(-3.7), substr("compat", 2, 3), 17 % 5, exp(1) * 1e10 }"#,
        ],
        Input::Null,
    )])
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn date() -> Outcome {
    let before = unix_seconds();
    let (native, compat) = both(&["date", "+%s"], Input::Null)?;
    let after = unix_seconds();
    let mut c = Checks::default();
    for (name, ran) in [("execve", &native), ("compat-exec", &compat)] {
        let text = String::from_utf8_lossy(&ran.stdout).trim().to_string();
        diag!(
            "{name}: date +%s: {}, {text:?}; 64-bit clock {before}..{after}",
            ran.status()
        );
        let secs: Option<u64> = text.parse().ok();
        c.check(
            secs.is_some_and(|s| s + 1 >= before && s <= after + 1),
            format!("{name}: {text} within a second of {before}..{after}"),
        );
        c.check(
            ran.exit == sys::Exit::Code(0),
            format!("{name}: {}", ran.status()),
        );
    }
    c.finish()
}

fn sleep() -> Outcome {
    let args: &[&str] = &["sleep", "0.2"];
    prepare()?;
    let native = run(Via::Execve, args, Input::Null)?;
    let start = Instant::now();
    let compat = run(Via::CompatExec, args, Input::Null)?;
    let elapsed = start.elapsed();
    refused(&compat)?;
    let mut c = Checks::default();
    check_same(&mut c, args, &native, &compat);
    c.check(
        elapsed >= Duration::from_millis(200),
        format!("compat-exec sleep 0.2 took {} ms", elapsed.as_millis()),
    );
    c.finish()
}

fn sh_pipeline() -> Outcome {
    compare(&[(
        &[
            "sh",
            "-c",
            r#"echo "a b c" | tr a-z A-Z | wc -c; seq 1 100 | awk '{ s += $1 } END { print s }'"#,
        ],
        Input::Null,
    )])
}

fn trap_usr1() -> Outcome {
    compare(&[(
        &[
            "sh",
            "-c",
            r#"trap "echo got USR1" USR1; kill -USR1 $$; echo after $?"#,
        ],
        Input::Null,
    )])
}

fn ls_proc_self() -> Outcome {
    compare(&[(&["sh", "-c", "ls /proc/self/"], Input::Null)])
}

fn process_tree() -> Outcome {
    compare(&[(
        &["sh", "-c", r#"sh -c "echo child; exit 3"; echo parent $?"#],
        Input::Null,
    )])
}

fn proc_self_exe() -> Outcome {
    compare(&[
        (&["readlink", "/proc/self/exe"], Input::Null),
        (&["cat", "/proc/self/comm"], Input::Null),
        (&["cat", "/proc/self/cmdline"], Input::Null),
    ])
}

fn maps_below_4g() -> Outcome {
    let (native, compat) = both(&["cat", "/proc/self/maps"], Input::Null)?;
    let text = |r: &Ran| String::from_utf8_lossy(&r.stdout).into_owned();
    let (native_maps, compat_maps) = (text(&native), text(&compat));
    for line in compat_maps.lines() {
        diag!("compat-exec maps: {line}");
    }
    for line in native_maps.lines() {
        diag!("execve maps: {line}");
    }
    let parsed = sys::parse_maps(&compat_maps);
    let high: Vec<&str> = parsed
        .iter()
        .filter(|m| m.end > FOUR_GIB)
        .map(|m| m.line.as_str())
        .collect();
    let mut c = Checks::default();
    c.check(
        compat.exit == sys::Exit::Code(0) && !parsed.is_empty(),
        format!(
            "compat-exec cat /proc/self/maps: {}, {} mappings",
            compat.status(),
            parsed.len()
        ),
    );
    c.check(
        high.is_empty(),
        format!("nothing at or above 4 GiB (found: {})", high.join(" | ")),
    );
    let kinds = |maps: &str| {
        let mut kinds: Vec<String> = sys::parse_maps(maps)
            .iter()
            .map(|m| format!("{} {}", m.perms, m.name))
            .collect();
        kinds.sort();
        kinds
    };
    let (want, got) = (kinds(&native_maps), kinds(&compat_maps));
    c.check(
        want == got,
        format!("same mappings as execve by permissions and name (execve {want:?}, compat-exec {got:?})"),
    );
    c.finish()
}

//! The one way xtask runs another program.
//!
//! A [`Cmd`] says what to run. How it runs depends on what the caller needs:
//! - short commands whose output is read (`git rev-parse`, `gcc --version`,
//!   checkpatch, gen_init_cpio) run through xshell: [`Cmd::read`],
//!   [`Cmd::read_bytes`], [`Cmd::output`], [`Cmd::succeeds`];
//! - long, logged or killable children (make, tar, QEMU, cargo) run through
//!   duct: [`Cmd::logged`], [`Cmd::run`], [`Cmd::stream`], [`Cmd::interactive`],
//!   [`Cmd::spawn_silent`]. Each is registered, dies with xtask
//!   (PR_SET_PDEATHSIG, for a SIGKILL of xtask where no handler runs), and is
//!   killed with its whole process group on drop, on error, on timeout and on
//!   Ctrl-C/SIGTERM ([`install_interrupt_handler`]).

use crate::host::ui;
use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

/// A program with its arguments, environment and directory.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
            stdin: None,
        }
    }

    /// `cargo` as this xtask was started with (`$CARGO`), else from PATH.
    pub fn cargo() -> Cmd {
        Cmd::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cmd {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Bytes fed to the program's stdin (short commands only).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }
}

/// `program arg1 arg2`, for messages and logs.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.to_string_lossy())?;
        for arg in &self.args {
            write!(f, " {}", arg.to_string_lossy())?;
        }
        Ok(())
    }
}

// Short commands whose output is read: xshell.
impl Cmd {
    fn xshell_output(&self) -> Result<std::process::Output> {
        let sh = xshell::Shell::new().context("cannot create a shell context")?;
        if let Some(dir) = &self.dir {
            sh.change_dir(dir);
        }
        let mut cmd = sh
            .cmd(&self.program)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .quiet()
            .ignore_status();
        if let Some(bytes) = &self.stdin {
            cmd = cmd.stdin(bytes);
        }
        cmd.output().with_context(|| format!("cannot start {self}"))
    }

    /// Runs to its end whatever its exit status (the caller reads both streams).
    pub fn output(&self) -> Result<std::process::Output> {
        self.xshell_output()
    }

    /// Stdout of a successful run; on failure the error holds stderr.
    pub fn read_bytes(&self) -> Result<Vec<u8>> {
        let out = self.xshell_output()?;
        if !out.status.success() {
            bail!(
                "{self} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
        Ok(out.stdout)
    }

    /// Like [`Cmd::read_bytes`], as text.
    pub fn read(&self) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.read_bytes()?).into_owned())
    }

    /// True if it ran and exited 0 (a question asked through an exit code).
    pub fn succeeds(&self) -> bool {
        self.xshell_output().is_ok_and(|o| o.status.success())
    }
}

// Long, logged or killable children: duct.
impl Cmd {
    fn duct(&self) -> duct::Expression {
        let mut e = duct::cmd(&self.program, &self.args);
        for (k, v) in &self.envs {
            e = e.env(k, v);
        }
        if let Some(dir) = &self.dir {
            e = e.dir(dir);
        }
        e.unchecked()
    }

    /// Runs with stdout and stderr appended to `log`. On failure the error
    /// holds the last lines of the log and its path, so nothing needs
    /// re-running to see why.
    pub fn logged(&self, log: &Path) -> Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log {}", log.display()))?;
        writeln!(file, "$ {self}")?;
        let expr = self
            .duct()
            .stdin_null()
            // duct applies the outer redirection first: stdout goes to the
            // log, then stderr joins it there.
            .stderr_to_stdout()
            .stdout_file(file);
        let child = Child::start(expr, Group::Own, self)?;
        let status = child.wait(self)?;
        if !status.success() {
            bail!(
                "{self} failed ({status}); last lines of {}:\n{}",
                log.display(),
                tail(log, 25)
            );
        }
        Ok(())
    }

    /// Runs with the terminal's stdout and stderr (cargo test, apt-get).
    pub fn run(&self) -> Result<std::process::ExitStatus> {
        Child::start(self.duct().stdin_null(), Group::Own, self)?.wait(self)
    }

    /// Runs attached to this terminal, in our process group so that it may
    /// read the terminal (QEMU for `shell` and `gdb`). Returns its exit code.
    pub fn interactive(&self) -> Result<i32> {
        let status = Child::start(self.duct(), Group::Terminal, self)?.wait(self)?;
        Ok(status.code().unwrap_or(1))
    }

    /// Starts it with stdout and stderr discarded; the caller signals and waits.
    pub fn spawn_silent(&self) -> Result<Child> {
        let expr = self.duct().stdin_null().stdout_null().stderr_null();
        Child::start(expr, Group::Own, self)
    }

    /// Starts it with stderr going to `stderr` and stdout read line by line
    /// by a thread: QEMU's serial console.
    pub fn stream(&self, stderr: &Path) -> Result<Stream> {
        let file =
            File::create(stderr).with_context(|| format!("cannot create {}", stderr.display()))?;
        let expr = self.duct().stdin_null().stderr_file(file);
        Stream::start(expr, self)
    }
}

/// Where a child lives: its own process group (killed as a whole), or ours
/// (it reads the terminal; killed alone).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Own,
    Terminal,
}

/// Children alive now, by pid, for the interrupt handler.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn with_guards(expr: duct::Expression, group: Group) -> duct::Expression {
    expr.before_spawn(move |command| {
        if group == Group::Own {
            command.process_group(0);
        }
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        Ok(())
    })
}

fn kill_group(pid: u32, group: Group) {
    let pid = Pid::from_raw(pid as i32);
    if group == Group::Own {
        let _ = killpg(pid, Signal::SIGKILL);
    }
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
}

fn forget(pid: u32) {
    CHILDREN.lock().unwrap().retain(|p| *p != pid);
}

/// A started child, killed (with its process group) when dropped unfinished.
pub struct Child {
    handle: duct::Handle,
    pid: u32,
    group: Group,
}

impl Child {
    fn start(expr: duct::Expression, group: Group, what: &Cmd) -> Result<Child> {
        let handle = with_guards(expr, group)
            .start()
            .with_context(|| format!("cannot start {what}"))?;
        let pid = handle.pids()[0];
        CHILDREN.lock().unwrap().push(pid);
        Ok(Child { handle, pid, group })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the end; the child is no longer registered afterwards.
    pub fn wait(self, what: &Cmd) -> Result<std::process::ExitStatus> {
        let status = self
            .handle
            .wait()
            .with_context(|| format!("waiting for {what}"))?
            .status;
        forget(self.pid);
        Ok(status)
    }

    /// The exit status if it has ended.
    pub fn try_wait(&self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.handle.try_wait()?.map(|o| o.status))
    }

    pub fn kill(&self) {
        if !matches!(self.handle.try_wait(), Ok(Some(_))) {
            kill_group(self.pid, self.group);
            let _ = self.handle.kill();
            let _ = self.handle.wait();
        }
        forget(self.pid);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One event of a streamed child.
pub enum Event {
    Line(String),
    /// Nothing arrived before the deadline.
    Quiet,
    /// Stdout closed and the child ended with this status (an exit code or a signal).
    Ended(std::process::ExitStatus),
}

/// A child whose stdout arrives line by line; killed when dropped.
pub struct Stream {
    reader: Arc<duct::ReaderHandle>,
    lines: mpsc::Receiver<String>,
    thread: Option<std::thread::JoinHandle<()>>,
    pid: u32,
}

impl Stream {
    fn start(expr: duct::Expression, what: &Cmd) -> Result<Stream> {
        let reader = with_guards(expr, Group::Own)
            .reader()
            .with_context(|| format!("cannot start {what}"))?;
        let pid = reader.pids()[0];
        CHILDREN.lock().unwrap().push(pid);
        let reader = Arc::new(reader);
        let (tx, lines) = mpsc::channel();
        let from = Arc::clone(&reader);
        let thread = std::thread::spawn(move || {
            let mut from = BufReader::new(&*from);
            let mut buf = Vec::new();
            while matches!(from.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                buf.clear();
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Stream {
            reader,
            lines,
            thread: Some(thread),
            pid,
        })
    }

    /// The next line, or `Quiet` at `deadline`, or `Ended` once stdout closed.
    pub fn next(&self, deadline: Instant) -> Result<Event> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(line) => Ok(Event::Line(line)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(Event::Quiet),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = loop {
                    // The reader saw EOF; the exit follows at once.
                    if let Some(out) = self.reader.try_wait().context("waiting for the child")? {
                        break out.status;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                };
                forget(self.pid);
                Ok(Event::Ended(status))
            }
        }
    }

    pub fn kill(&self) {
        if !matches!(self.reader.try_wait(), Ok(Some(_))) {
            kill_group(self.pid, Group::Own);
            let _ = self.reader.kill();
        }
        forget(self.pid);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.kill();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Kills every registered child with its process group.
fn kill_all() {
    for pid in CHILDREN.lock().unwrap().drain(..) {
        kill_group(pid, Group::Own);
    }
}

/// Set by the interrupt handler before it kills anything.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once Ctrl-C or SIGTERM arrived: a child that failed after that
/// was killed by the handler, and its failure is the interrupt, not an error.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Ctrl-C or SIGTERM: kill every child we started (QEMU, make), then exit.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
        kill_all();
        ui::finish_all();
        eprintln!("interrupted: stopped every QEMU and build process this run started");
        // results::exit::INTERRUPTED (host/ cannot import results/).
        std::process::exit(130);
    });
}

/// The last `n` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Creates (or empties) a log file for [`Cmd::logged`].
pub fn create_log(path: &Path) -> Result<()> {
    File::create(path).with_context(|| format!("cannot create log {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn read_returns_stdout_and_errors_carry_stderr() {
        assert_eq!(Cmd::new("echo").args(["a", "b"]).read().unwrap(), "a b\n");
        let err = format!(
            "{:#}",
            Cmd::new("sh")
                .args(["-c", "echo why >&2; exit 3"])
                .read()
                .unwrap_err()
        );
        assert!(
            err.contains("sh -c echo why >&2; exit 3 failed") && err.contains("why"),
            "{err}"
        );
        let err = format!("{:#}", Cmd::new("/no/such/program").read().unwrap_err());
        assert!(err.contains("cannot start /no/such/program"), "{err}");
    }

    #[test]
    fn stdin_env_and_dir_reach_the_program() {
        let out = Cmd::new("sh")
            .args(["-c", "cat; echo \"$X\"; pwd"])
            .stdin("in\n")
            .env("X", "ex")
            .dir("/tmp")
            .read()
            .unwrap();
        assert_eq!(out, "in\nex\n/tmp\n");
        assert!(Cmd::new("true").succeeds());
        assert!(!Cmd::new("false").succeeds());
    }

    #[test]
    fn logged_failures_quote_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        create_log(&log).unwrap();
        Cmd::new("echo").arg("fine").logged(&log).unwrap();
        let err = Cmd::new("sh")
            .args(["-c", "echo on-stdout; echo broken >&2; exit 2"])
            .logged(&log)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("last lines of") && err.contains("broken"),
            "{err}"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with("$ echo fine\nfine\n$ sh -c"), "{text}");
        assert!(
            text.ends_with("on-stdout\nbroken\n"),
            "stderr is logged too: {text}"
        );
    }

    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
    }

    #[test]
    fn a_dropped_child_is_killed_and_forgotten() {
        let child = Cmd::new("sleep").arg("600").spawn_silent().unwrap();
        let pid = child.pid();
        assert!(CHILDREN.lock().unwrap().contains(&pid));
        drop(child);
        assert!(!running(pid), "sleep {pid} survived its Child");
        assert!(!CHILDREN.lock().unwrap().contains(&pid));
    }

    #[test]
    fn a_stream_yields_lines_then_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Cmd::new("sh")
            .args(["-c", "echo one; echo two; exit 4"])
            .stream(&dir.path().join("stderr"))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut lines = Vec::new();
        let code = loop {
            match stream.next(deadline).unwrap() {
                Event::Line(l) => lines.push(l),
                Event::Quiet => panic!("no end before the deadline"),
                Event::Ended(status) => break status.code(),
            }
        };
        assert_eq!(
            (lines, code),
            (vec!["one".to_string(), "two".into()], Some(4))
        );
    }

    #[test]
    fn dropping_a_stream_kills_its_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let stream = Cmd::new("sh")
            .arg("-c")
            .arg(format!(
                "sleep 600 & echo $! > {}; echo up; wait",
                pidfile.display()
            ))
            .stream(&dir.path().join("stderr"))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        assert!(matches!(stream.next(deadline).unwrap(), Event::Line(l) if l == "up"));
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        drop(stream);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!running(grandchild), "the grandchild {grandchild} survived");
    }
}

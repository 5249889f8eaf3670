//! Every long-running child (QEMU, make) is registered here so that an
//! interrupt, a timeout or an error never leaves one behind.

use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::Mutex;

static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// A child in its own process group, killed (with its whole group) on drop.
pub struct Guarded {
    pub child: Child,
}

/// Spawns `cmd` as the leader of a new process group, dying with us.
pub fn spawn(cmd: &mut Command) -> Result<Guarded> {
    cmd.process_group(0);
    spawn_in_foreground(cmd)
}

/// Like `spawn`, but in our process group, so it may read the terminal.
pub fn spawn_in_foreground(cmd: &mut Command) -> Result<Guarded> {
    unsafe {
        cmd.pre_exec(|| {
            // Also covers a SIGKILL of xtask, where no handler runs.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", crate::cmd::describe(cmd)))?;
    CHILDREN.lock().unwrap().push(child.id() as i32);
    Ok(Guarded { child })
}

impl Guarded {
    /// Kills the child's process group unless the child already exited.
    pub fn kill(&mut self) {
        let pid = self.child.id() as i32;
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        CHILDREN.lock().unwrap().retain(|p| *p != pid);
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn kill_all() {
    for pid in CHILDREN.lock().unwrap().drain(..) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

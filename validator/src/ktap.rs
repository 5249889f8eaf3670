//! KTAP v1 output, line by line and flushed, so that the console shows which
//! scenario was running if the kernel dies.

use crate::runner::Observed;
use contract::Outcome;
use std::io::Write;

pub struct Ktap {
    index: usize,
    pass: usize,
    fail: usize,
    skip: usize,
}

/// Prints one line and flushes it at once: if the kernel dies next, the
/// console already shows it.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

impl Ktap {
    pub fn start(count: usize) -> Ktap {
        emit("KTAP version 1");
        emit(&format!("1..{count}"));
        Ktap {
            index: 0,
            pass: 0,
            fail: 0,
            skip: 0,
        }
    }

    /// Any `# ...` line outside a scenario.
    pub fn comment(&self, text: &str) {
        emit(&format!("# {text}"));
    }

    pub fn begin(&self, id: &str) {
        emit(&format!("# start {id}"));
    }

    pub fn diagnostic(&self, id: &str, text: &str) {
        emit(&format!("# {id}: {text}"));
    }

    /// The result line, in the contract's format (`not ok 4 id #
    /// reason=EINVAL`, see `contract::ktap`).
    pub fn result(&mut self, id: &str, observed: &Observed) {
        self.index += 1;
        match observed.outcome() {
            Outcome::Pass => self.pass += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Skip => self.skip += 1,
        }
        emit(&contract::ktap::result_line(
            self.index as u32,
            id,
            observed,
        ));
    }

    pub fn finish(&self) {
        emit(&format!(
            "# Totals: pass:{} fail:{} xfail:0 xpass:0 skip:{} error:0",
            self.pass, self.fail, self.skip
        ));
    }
}

//! What the guest console says about the kernel itself: oopses, BUGs,
//! WARNINGs and panics fail a run even when every scenario passed.

/// Strips a printk timestamp such as `[    1.234567] `.
fn without_timestamp(line: &str) -> &str {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((stamp, after)) = rest.split_once(']') {
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return after.trim_start();
            }
        }
    }
    trimmed
}

/// The kernel problem a console line reports, if any.
pub fn kernel_problem(line: &str) -> Option<&'static str> {
    let text = without_timestamp(line);
    const PATTERNS: [(&str, &str); 9] = [
        ("Kernel panic - not syncing", "panic"),
        ("Oops:", "oops"),
        ("BUG:", "BUG"),
        ("kernel BUG at", "BUG"),
        ("WARNING:", "WARNING"),
        ("general protection fault", "general protection fault"),
        ("Unable to handle kernel", "oops"),
        // The debug flavour's detectors; KASAN, KFENCE and lockdep start
        // with BUG: or WARNING: already.
        ("UBSAN:", "UBSAN"),
        // What the validator prints of the end-of-run kmemleak scan.
        ("# kmemleak: unreferenced object", "kmemleak"),
    ];
    PATTERNS
        .iter()
        .find(|(pattern, _)| text.starts_with(pattern))
        .map(|(_, kind)| *kind)
}

/// What each detector of the debug flavour prints when it starts: a debug
/// kernel that does not say these lines is not checking anything.
const DEBUG_ANNOUNCEMENTS: [(&str, &str); 3] = [
    ("KASAN", "KernelAddressSanitizer initialized"),
    ("lockdep", "Lock dependency validator"),
    ("kmemleak", "Kernel memory leak detector initialized"),
];

/// The debug detectors whose announcement is missing from `console`.
pub fn debug_detectors_silent(console: &[String]) -> Vec<&'static str> {
    DEBUG_ANNOUNCEMENTS
        .iter()
        .filter(|(_, line)| !console.iter().any(|l| l.contains(line)))
        .map(|(name, _)| *name)
        .collect()
}

pub fn is_panic(line: &str) -> bool {
    kernel_problem(line) == Some("panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_kernel_problems() {
        assert_eq!(
            kernel_problem("[    2.001] Kernel panic - not syncing: Attempted to kill init!"),
            Some("panic")
        );
        assert_eq!(kernel_problem("Oops: 0000 [#1] PREEMPT SMP"), Some("oops"));
        assert_eq!(
            kernel_problem("[ 1.5] BUG: kernel NULL pointer dereference, address: 0"),
            Some("BUG")
        );
        assert_eq!(
            kernel_problem("WARNING: CPU: 0 PID: 1 at mm/mmap.c:100 foo+0x1/0x2"),
            Some("WARNING")
        );
        assert_eq!(kernel_problem("kernel BUG at mm/memory.c:42!"), Some("BUG"));
        assert!(is_panic("Kernel panic - not syncing: Fatal exception"));
    }

    #[test]
    fn a_debug_kernel_must_announce_its_detectors() {
        let console: Vec<String> = [
            "[    0.000000] kasan: KernelAddressSanitizer initialized",
            "[    0.010000] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(debug_detectors_silent(&console), ["kmemleak"]);
        assert_eq!(debug_detectors_silent(&[]).len(), 3);
    }

    #[test]
    fn recognises_the_debug_flavours_detectors() {
        let kasan = "[  9.1] BUG: KASAN: slab-use-after-free in vdso_replace_image+0x1/0x2";
        assert_eq!(kernel_problem(kasan), Some("BUG"));
        let lockdep = "WARNING: possible circular locking dependency detected";
        assert_eq!(kernel_problem(lockdep), Some("WARNING"));
        let ubsan = "[ 3.2] UBSAN: shift-out-of-bounds in arch/x86/kernel/process_64.c:900:3";
        assert_eq!(kernel_problem(ubsan), Some("UBSAN"));
        assert_eq!(
            kernel_problem("BUG: KFENCE: out-of-bounds read"),
            Some("BUG")
        );
        let leak = "# kmemleak: unreferenced object 0xffff888003a1c000 (size 64):";
        assert_eq!(kernel_problem(leak), Some("kmemleak"));
        // kmemleak announcing itself is not a finding.
        assert_eq!(
            kernel_problem("kmemleak: Kernel memory leak detector initialized"),
            None
        );
    }

    #[test]
    fn ignores_validator_lines_that_mention_the_words() {
        assert_eq!(
            kernel_problem("# sigsegv: child got SIGSEGV, not a BUG: fine"),
            None
        );
        assert_eq!(kernel_problem("ok 3 no_warning_here"), None);
        assert_eq!(kernel_problem("random: crng init done"), None);
    }
}

//! This process's mappings, from /proc/self/maps.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub name: String,
}

impl Map {
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start < end && start < self.end
    }
}

impl std::fmt::Display for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{:#x}-{:#x} {} {}",
            self.start, self.end, self.perms, self.name
        )
    }
}

pub fn parse(text: &str) -> Vec<Map> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Map> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?.to_string();
    let name = fields.nth(3).unwrap_or("").to_string();
    Some(Map {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms,
        name,
    })
}

pub fn read() -> Vec<Map> {
    parse(&std::fs::read_to_string("/proc/self/maps").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_and_anonymous_lines() {
        let m = parse(
            "08048000-08049000 r--p 00000000 08:01 1234   /bin/busybox\n\
             f7ff0000-f7ff2000 r-xp 00000000 00:00 0      [vdso]\n\
             0823f000-08241000 rw-p 00000000 00:00 0\n",
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "/bin/busybox");
        assert_eq!((m[1].start, m[1].end), (0xf7ff_0000, 0xf7ff_2000));
        assert_eq!(m[2].name, "");
        assert!(m[0].overlaps(0x0804_8fff, 0x0804_a000));
        assert!(!m[0].overlaps(0x0804_9000, 0x0804_a000));
    }
}

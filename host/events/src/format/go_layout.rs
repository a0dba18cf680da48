//! Go time layouts (`2006-01-02 15:04:05`), for IG's `formatters.timestamp.format` annotation.
//!
//! Supported elements (Go's time.Format): `2006` `06` `01` `1` `Jan` `January` `02` `2` `_2`
//! `002` `Mon` `Monday` `15` `03` `3` `04` `4` `05` `5` `PM` `pm` `MST` `Z07:00` `Z0700` `Z07`
//! `-07:00` `-0700` `-07` and fractional seconds `.000`/`,000` (fixed) and `.999` (trailing zeros
//! dropped). Everything else is copied. `MST` prints `UTC` at offset 0 and `+hhmm` otherwise (the
//! caller gives an offset, not a zone name; Go prints the same for a zone without a name).

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The broken-down local time.
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub yday: u32,
    pub weekday: usize,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub nanos: u32,
    pub offset_secs: i32,
}

fn zone(out: &mut String, offset: i32, colon: bool, z: bool, hours_only: bool) {
    if z && offset == 0 {
        out.push('Z');
        return;
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs() / 60;
    out.push(sign);
    out.push_str(&format!("{:02}", a / 60));
    if hours_only {
        return;
    }
    if colon {
        out.push(':');
    }
    out.push_str(&format!("{:02}", a % 60));
}

pub(crate) fn format(layout: &str, t: &Civil) -> String {
    let mut out = String::with_capacity(layout.len() + 16);
    let mut rest = layout;
    // Longest tokens first where one is a prefix of another.
    const TOKENS: [&str; 31] = [
        "January", "Monday", "Z07:00", "-07:00", "Z0700", "-0700", "2006", "Jan", "Mon", "MST",
        "002", "Z07", "-07", "01", "02", "_2", "06", "15", "03", "04", "05", "PM", "pm", "1", "2",
        "3", "4", "5", ".0", ",0", ".9",
    ];
    while !rest.is_empty() {
        let Some(tok) = TOKENS.iter().find(|tk| rest.starts_with(**tk)) else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        // Fractional seconds: a run of 0s or 9s after '.' or ','; Go requires a non-digit next.
        if tok.len() == 2 && (tok.starts_with('.') || tok.starts_with(',')) {
            let digit = &tok[1..2];
            let n = rest[1..]
                .chars()
                .take_while(|c| c.to_string() == digit)
                .count();
            if rest[1 + n..].starts_with(|c: char| c.is_ascii_digit()) {
                out.push_str(&rest[..1 + n]);
                rest = &rest[1 + n..];
                continue;
            }
            let digits = format!("{:09}", t.nanos);
            let n9 = n.min(9);
            if digit == "0" {
                out.push_str(&rest[..1]);
                out.push_str(&digits[..n9]);
            } else {
                let trimmed = digits[..n9].trim_end_matches('0');
                if !trimmed.is_empty() {
                    out.push_str(&rest[..1]);
                    out.push_str(trimmed);
                }
            }
            rest = &rest[1 + n..];
            continue;
        }
        let h12 = match t.hour % 12 {
            0 => 12,
            h => h,
        };
        match *tok {
            "2006" => out.push_str(&format!("{:04}", t.year)),
            "06" => out.push_str(&format!("{:02}", t.year.rem_euclid(100))),
            "01" => out.push_str(&format!("{:02}", t.month)),
            "1" => out.push_str(&t.month.to_string()),
            "Jan" => out.push_str(&MONTHS[(t.month - 1) as usize][..3]),
            "January" => out.push_str(MONTHS[(t.month - 1) as usize]),
            "02" => out.push_str(&format!("{:02}", t.day)),
            "2" => out.push_str(&t.day.to_string()),
            "_2" => out.push_str(&format!("{:>2}", t.day)),
            "002" => out.push_str(&format!("{:03}", t.yday)),
            "Mon" => out.push_str(&DAYS[t.weekday][..3]),
            "Monday" => out.push_str(DAYS[t.weekday]),
            "15" => out.push_str(&format!("{:02}", t.hour)),
            "03" => out.push_str(&format!("{h12:02}")),
            "3" => out.push_str(&h12.to_string()),
            "04" => out.push_str(&format!("{:02}", t.minute)),
            "4" => out.push_str(&t.minute.to_string()),
            "05" => out.push_str(&format!("{:02}", t.second)),
            "5" => out.push_str(&t.second.to_string()),
            "PM" => out.push_str(if t.hour >= 12 { "PM" } else { "AM" }),
            "pm" => out.push_str(if t.hour >= 12 { "pm" } else { "am" }),
            "MST" => {
                if t.offset_secs == 0 {
                    out.push_str("UTC");
                } else {
                    zone(&mut out, t.offset_secs, false, false, false);
                }
            }
            "Z07:00" => zone(&mut out, t.offset_secs, true, true, false),
            "-07:00" => zone(&mut out, t.offset_secs, true, false, false),
            "Z0700" => zone(&mut out, t.offset_secs, false, true, false),
            "-0700" => zone(&mut out, t.offset_secs, false, false, false),
            "Z07" => zone(&mut out, t.offset_secs, false, true, true),
            "-07" => zone(&mut out, t.offset_secs, false, false, true),
            other => out.push_str(other),
        }
        rest = &rest[tok.len()..];
    }
    out
}

//! Names, sizes, durations and other short checked words.

use super::is_dns_label;

fn check_name(s: &str) -> Result<(), String> {
    if is_dns_label(s) && s.len() <= 40 {
        return Ok(());
    }
    let fixed = s
        .trim()
        .to_ascii_lowercase()
        .replace(['_', ' ', '.'], "-")
        .trim_matches('-')
        .to_owned();
    let hint = if is_dns_label(&fixed) && fixed.len() <= 40 {
        format!("; write `{fixed}`")
    } else {
        String::new()
    };
    Err(format!(
        "`{s}` is not a valid name: use 1 to 40 lowercase letters, digits and `-`, not starting \
         or ending with `-` (names become host, container and network names){hint}"
    ))
}

checked_string!(
    /// A name of a stack, environment, host or agent: a DNS label of at most 40 characters.
    Name,
    check_name,
    "a name in quotes, such as `acme`"
);

/// For `2 gigs`, `512 MB`, `2GB`: the size it most likely means (`2g`, `512m`).
fn size_meant(s: &str) -> Option<String> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let letter = ["k", "m", "g"].into_iter().find(|l| unit.starts_with(l))?;
    let known = [
        "", "b", "ib", "ig", "igs", "ibs", "eg", "egs", "igabyte", "igabytes",
    ];
    let plain = unit.trim_start_matches(letter);
    (!number.is_empty() && known.contains(&plain)).then(|| format!("{number}{letter}"))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let hint = || match size_meant(s) {
        Some(meant) => format!(
            "`{s}` is not a size; write `{meant}` (a whole number with a unit `k`, `m` or `g` \
             and no space)"
        ),
        None => format!(
            "`{s}` is not a size; write a whole number with a unit `k`, `m` or `g` and no space, \
             such as `512m` or `2g`"
        ),
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(hint)?;
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| hint())?;
    let factor: u64 = match unit {
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(hint()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too large"))
}

checked_string!(
    /// A memory size in Docker's notation: `512m`, `2g`.
    Size,
    check_size,
    "a size in quotes, such as `\"2g\"`"
);

fn check_size(s: &str) -> Result<(), String> {
    parse_size(s).map(|_| ())
}

impl Size {
    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        parse_size(&self.0).unwrap_or_default()
    }
}

fn parse_duration(s: &str) -> Result<u64, String> {
    let hint = || {
        format!(
            "`{s}` is not a duration; write a whole number with a unit `s`, `m`, `h`, `d` or `w` \
             and no space, such as `10m` or `1h`"
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(hint)?;
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| hint())?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(hint()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too long"))
}

fn check_duration(s: &str) -> Result<(), String> {
    parse_duration(s).map(|_| ())
}

checked_string!(
    /// A duration: `30s`, `10m`, `1h`, `1d`, `1w`.
    DurationText,
    check_duration,
    "a duration in quotes, such as `\"10m\"`"
);

impl DurationText {
    /// The duration in seconds.
    pub fn seconds(&self) -> u64 {
        parse_duration(&self.0).unwrap_or_default()
    }
}

fn check_time_of_day(s: &str) -> Result<(), String> {
    let ok = s.len() == 5
        && s.as_bytes()[2] == b':'
        && s[..2].parse::<u8>().is_ok_and(|h| h < 24)
        && s[3..].parse::<u8>().is_ok_and(|m| m < 60);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a time of day; write `HH:MM` (24 h), such as `03:30`"
        ))
    }
}

checked_string!(
    /// A time of day, `HH:MM` in 24-hour form (host local time).
    TimeOfDay,
    check_time_of_day,
    "a time of day in quotes, such as `\"03:30\"`"
);

fn check_env_name_chars(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn check_env_name(s: &str) -> Result<(), String> {
    if check_env_name_chars(s) {
        Ok(())
    } else {
        let upper = s.to_ascii_uppercase().replace(['-', '.', ' '], "_");
        let fixed = check_env_name_chars(&upper).then(|| format!(": write `{upper}`"));
        Err(format!(
            "`{s}` is not an environment variable name; use `UPPER_CASE` letters, digits and \
             `_`{}",
            fixed.unwrap_or_default()
        ))
    }
}

checked_string!(
    /// An environment variable name: `UPPER_CASE`.
    EnvName,
    check_env_name,
    "an environment variable name"
);

fn check_unix_user(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = s.len() <= 32
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        return Err(format!(
            "`{s}` is not a valid user name; use lowercase letters, digits, `_` and `-` (at most 32)"
        ));
    }
    if s == "root" {
        return Err(
            "root login is always disabled; name an admin user such as `hermes-admin`".to_owned(),
        );
    }
    Ok(())
}

checked_string!(
    /// A Unix user name (never `root`).
    UnixUser,
    check_unix_user,
    "a user name in quotes"
);

//! Time windows for change calendars and freezes: weekly windows (days and hours at a fixed UTC
//! offset) and absolute ones (a start and an end), parsed from policy YAML and tested against an
//! injected time.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike, Utc, Weekday};
use marked_yaml::Node;

use super::file::{Diagnostics, Map, Pos, clip, sequence, text};

/// One window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub(crate) name: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Weekly {
        days: [bool; 7],
        /// Minutes after midnight, `from` inclusive, `to` exclusive.
        from: u32,
        to: u32,
        offset: FixedOffset,
    },
    Absolute {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FIELDS: &[&str] = &["name", "days", "from", "to", "utc_offset", "start", "end"];

impl Window {
    pub(crate) fn contains(&self, t: DateTime<Utc>) -> bool {
        match &self.kind {
            Kind::Weekly {
                days,
                from,
                to,
                offset,
            } => {
                let local = t.with_timezone(offset);
                let day = local.weekday().num_days_from_monday() as usize;
                let minute = local.hour() * 60 + local.minute();
                days.get(day).copied().unwrap_or(false) && minute >= *from && minute < *to
            }
            Kind::Absolute { start, end } => *start <= t && t < *end,
        }
    }
}

/// Parses the `value` of `within_windows` / `outside_windows`: a list of window mappings.
pub(crate) fn parse_windows(node: &Node, d: &mut Diagnostics) -> Option<Vec<Window>> {
    let seq = sequence(node, "value", d)?;
    if seq.is_empty() {
        d.error(
            Pos::of(node),
            "the list of windows is empty",
            "add at least one window, e.g. `- {name: weekend, days: [sat, sun]}`",
        );
        return None;
    }
    let before = d.errors.len();
    let windows: Vec<_> = seq
        .iter()
        .enumerate()
        .filter_map(|(i, n)| parse_window(n, i, d))
        .collect();
    (d.errors.len() == before).then_some(windows)
}

fn parse_window(node: &Node, index: usize, d: &mut Diagnostics) -> Option<Window> {
    let map = Map::new(node, "a window", d)?;
    map.allow_only(FIELDS, d);
    let name = map
        .optional_str("name", d)
        .map_or_else(|| format!("window {}", index + 1), |t| t.value);
    let weekly = map.has("days");
    let absolute = map.has("start") || map.has("end");
    let kind = if weekly && absolute {
        d.error(
            map.pos,
            "a window has both `days` and `start`/`end`",
            "a weekly window uses `days`, `from`, `to`; an absolute one uses `start` and `end`",
        );
        return None;
    } else if absolute {
        let start = map
            .required_str("start", "give `start` and `end` as RFC 3339 timestamps", d)
            .and_then(|t| timestamp_field(&t, d));
        let end = map
            .required_str("end", "give `start` and `end` as RFC 3339 timestamps", d)
            .and_then(|t| timestamp_field(&t, d));
        let (start, end) = (start?, end?);
        if end <= start {
            d.error(
                map.key_pos("end"),
                "the window ends before it starts",
                "make `end` later than `start`",
            );
            return None;
        }
        Kind::Absolute { start, end }
    } else if weekly {
        let days = parse_days(map.get("days")?, d)?;
        let from = match map.optional_str("from", d) {
            Some(t) => clock(&t, d)?,
            None => 0,
        };
        let to = match map.optional_str("to", d) {
            Some(t) => clock(&t, d)?,
            None => 24 * 60,
        };
        if to <= from {
            d.error(
                map.key_pos("to"),
                "`to` is not after `from`",
                "split a window that crosses midnight into two windows",
            );
            return None;
        }
        let offset = match map.optional_str("utc_offset", d) {
            Some(t) => match t.value.parse::<FixedOffset>() {
                Ok(o) => o,
                Err(_) => {
                    d.error(
                        t.pos,
                        format!("`{}` is not a UTC offset", clip(&t.value)),
                        "write the offset as `+01:00` or `-05:00`",
                    );
                    return None;
                }
            },
            None => FixedOffset::east_opt(0)?,
        };
        Kind::Weekly {
            days,
            from,
            to,
            offset,
        }
    } else {
        d.error(map.pos, "a window needs `days` (weekly) or `start` and `end` (absolute)", "e.g. `{name: weekend, days: [sat, sun]}` or `{start: 2025-12-24T00:00:00Z, end: 2026-01-02T00:00:00Z}`");
        return None;
    };
    Some(Window { name, kind })
}

fn parse_days(node: &Node, d: &mut Diagnostics) -> Option<[bool; 7]> {
    let seq = sequence(node, "days", d)?;
    let mut days = [false; 7];
    let mut ok = !seq.is_empty();
    if seq.is_empty() {
        d.error(
            Pos::of(node),
            "`days` is empty",
            "list days as mon, tue, wed, thu, fri, sat, sun",
        );
    }
    for n in seq.iter() {
        let Some(t) = text(n, "days", d) else {
            ok = false;
            continue;
        };
        match DAYS
            .iter()
            .position(|day| t.value.eq_ignore_ascii_case(day))
        {
            Some(i) => {
                if let Some(slot) = days.get_mut(i) {
                    *slot = true;
                }
            }
            None => {
                d.error(
                    t.pos,
                    format!("unknown day `{}`", clip(&t.value)),
                    "use mon, tue, wed, thu, fri, sat or sun",
                );
                ok = false;
            }
        }
    }
    ok.then_some(days)
}

/// `HH:MM` as minutes after midnight; `24:00` is the end of the day.
fn clock(t: &super::file::Text, d: &mut Diagnostics) -> Option<u32> {
    let parsed = t.value.split_once(':').and_then(|(h, m)| {
        let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0)) && t.value.len() == 5).then_some(h * 60 + m)
    });
    if parsed.is_none() {
        d.error(
            t.pos,
            format!("`{}` is not a time of day", clip(&t.value)),
            "write times as `HH:MM`, from `00:00` to `24:00`",
        );
    }
    parsed
}

fn timestamp_field(t: &super::file::Text, d: &mut Diagnostics) -> Option<DateTime<Utc>> {
    let ts = parse_timestamp(&t.value);
    if ts.is_none() {
        d.error(
            t.pos,
            format!("`{}` is not a timestamp", clip(&t.value)),
            "write an RFC 3339 timestamp such as `2025-12-24T00:00:00Z`",
        );
    }
    ts
}

/// RFC 3339, or ServiceNow's `YYYY-MM-DD HH:MM:SS` read as UTC.
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// `2025-06-07T10:00:00Z (sat)`, for reasons.
pub(crate) fn show_time(t: DateTime<Utc>) -> String {
    let day = match t.weekday() {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    };
    format!(
        "{} ({day})",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn windows(yaml: &str) -> Result<Vec<Window>, Vec<String>> {
        let mut d = Diagnostics::new("t.yaml");
        let node = marked_yaml::parse_yaml(0, format!("v: {yaml}")).unwrap();
        let v = node.as_mapping().unwrap().get("v").unwrap().clone();
        parse_windows(&v, &mut d).ok_or_else(|| d.errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn weekly_window_respects_offset_and_hours() {
        let w = windows("[{days: [fri], from: '16:00', utc_offset: '+02:00'}]").unwrap();
        let t = |s: &str| parse_timestamp(s).unwrap();
        assert!(w[0].contains(t("2025-06-06T14:00:00Z")));
        assert!(!w[0].contains(t("2025-06-06T13:59:00Z")));
        assert!(!w[0].contains(t("2025-06-06T22:00:00Z")));
    }

    #[test]
    fn bad_windows_are_reported() {
        let e = windows("[{days: [funday]}, {start: 2025-01-02T00:00:00Z, end: 2025-01-01T00:00:00Z}, {from: '25:00'}]").unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("unknown day `funday`"));
    }
}

//! When a scheduled callback is due: the agent types the customer's own
//! clock time, with its UTC offset or with the customer's time zone, and
//! the daemon keeps both that text (for the agent) and the UTC instant.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::Schedule;

/// A due time the daemon cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// `tz` is not an IANA time zone name.
    #[error("unknown time zone {0:?} (expected an IANA name such as \"Europe/Paris\")")]
    UnknownZone(String),
    /// `at` is neither RFC 3339 nor a local date-time with a `tz`.
    #[error("cannot read {at:?} as a time: {why}")]
    Unreadable { at: String, why: String },
    #[error("{0:?} is in the past")]
    InThePast(String),
}

/// Read `at` (RFC 3339 with an offset, e.g. `2026-11-23T09:30:00-05:00`; or
/// a local `2026-11-23T09:30` with `tz`) as a schedule due after `now`.
pub fn parse_at(at: &str, tz: Option<&str>, notes: Option<String>, now: Timestamp) -> Result<Schedule, ScheduleError> {
    let unreadable = |why: String| ScheduleError::Unreadable { at: at.into(), why };
    let zone = tz.map(|name| TimeZone::get(name).map_err(|_| ScheduleError::UnknownZone(name.into()))).transpose()?;
    let due_at = match (at.parse::<Timestamp>(), &zone) {
        (Ok(instant), _) => instant,
        (Err(_), Some(zone)) => {
            let local: DateTime = at.parse().map_err(|e: jiff::Error| unreadable(e.to_string()))?;
            local.to_zoned(zone.clone()).map_err(|e| unreadable(e.to_string()))?.timestamp()
        }
        (Err(e), None) => {
            return Err(unreadable(format!("{e}; give an offset (…-05:00 or Z) or a tz")));
        }
    };
    if due_at <= now {
        return Err(ScheduleError::InThePast(at.into()));
    }
    // The customer's clock: in their zone when given, else at the offset typed.
    let local = match &zone {
        Some(zone) => due_at.to_zoned(zone.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => at.to_string(),
    };
    Ok(Schedule { due_at, tz: tz.map(str::to_string), local, notes, instructions: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_offset_time_is_read_as_that_instant() {
        let s = parse_at("2026-11-23T09:30:00-05:00", None, None, now()).unwrap();
        assert_eq!(s.due_at, "2026-11-23T14:30:00Z".parse().unwrap());
        assert_eq!(s.local, "2026-11-23T09:30:00-05:00");
    }

    #[test]
    fn a_local_time_is_read_in_the_customers_zone_with_its_daylight_rules() {
        let winter = parse_at("2026-12-01T09:30", Some("America/New_York"), None, now()).unwrap();
        assert_eq!(winter.due_at, "2026-12-01T14:30:00Z".parse().unwrap());
        assert_eq!(winter.local, "2026-12-01T09:30:00-05:00");
        let summer = parse_at("2027-07-01T09:30:00", Some("America/New_York"), None, now()).unwrap();
        assert_eq!(summer.due_at, "2027-07-01T13:30:00Z".parse().unwrap());
        let offset_and_zone = parse_at("2026-12-01T15:30:00+01:00", Some("Europe/Paris"), None, now()).unwrap();
        assert_eq!(offset_and_zone.due_at, "2026-12-01T14:30:00Z".parse().unwrap());
    }

    #[test]
    fn bad_times_say_what_is_wrong() {
        assert_eq!(
            parse_at("2026-12-01T09:30", Some("Mars/Olympus"), None, now()),
            Err(ScheduleError::UnknownZone("Mars/Olympus".into()))
        );
        let no_zone = parse_at("2026-12-01T09:30", None, None, now()).unwrap_err();
        assert!(no_zone.to_string().contains("offset"), "{no_zone}");
        assert!(matches!(parse_at("tomorrow", Some("UTC"), None, now()), Err(ScheduleError::Unreadable { .. })));
        assert_eq!(
            parse_at("2026-11-21T11:00:00Z", None, None, now()),
            Err(ScheduleError::InThePast("2026-11-21T11:00:00Z".into()))
        );
    }
}

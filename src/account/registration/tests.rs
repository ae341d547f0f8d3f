use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn sends(steps: &[Step]) -> Vec<Action> {
    steps.iter().filter_map(|s| if let Step::Send(a) = s { Some(*a) } else { None }).collect()
}

fn reports(steps: &[Step]) -> Vec<(RegState, Option<u16>)> {
    steps.iter().filter_map(|s| if let Step::Report(r) = s { Some((r.state, r.sip_code)) } else { None }).collect()
}

fn registered(expires: u32, keepalive: Option<Duration>, t0: Instant) -> Registration {
    let mut reg = Registration::new(expires, keepalive);
    reg.start(t0);
    reg.on_outcome(Outcome::Registered { granted_s: expires }, t0);
    reg
}

#[test]
fn registers_then_refreshes_before_the_granted_lifetime_ends() {
    let t0 = Instant::now();
    let mut reg = Registration::new(600, None);
    let steps = reg.start(t0);
    assert_eq!(sends(&steps), [Action::Register { expires_s: 600 }]);
    assert_eq!(reports(&steps), [(RegState::Registering, None)]);
    // The registrar grants less than asked: the refresh follows the grant.
    let steps = reg.on_outcome(Outcome::Registered { granted_s: 120 }, t0);
    assert_eq!(reports(&steps), [(RegState::Registered, None)]);
    assert_eq!(reg.next_deadline(), Some(t0 + secs(90)));
    assert!(reg.poll(t0 + secs(89)).is_empty());
    let steps = reg.poll(t0 + secs(90));
    assert_eq!(sends(&steps), [Action::Register { expires_s: 600 }]);
    assert!(reports(&steps).is_empty(), "a refresh is not news");
    assert!(reg.poll(t0 + secs(200)).is_empty(), "nothing more while the refresh is out");
}

#[test]
fn failures_back_off_doubling_to_a_cap_and_report_the_code() {
    let t0 = Instant::now();
    let mut reg = Registration::new(600, None);
    reg.start(t0);
    let steps = reg.on_outcome(Outcome::Rejected { code: 403, reason: "Forbidden".into() }, t0);
    assert_eq!(reports(&steps), [(RegState::Failed, Some(403))]);
    let Step::Report(report) = &steps[0] else { panic!() };
    assert_eq!(report.retry_in_ms, Some(1000));
    let mut at = t0;
    let mut waits = Vec::new();
    for _ in 0..8 {
        let next = reg.next_deadline().unwrap();
        waits.push((next - at).as_secs());
        at = next;
        assert_eq!(sends(&reg.poll(at)), [Action::Register { expires_s: 600 }]);
        reg.on_outcome(Outcome::Unreachable { reason: "timeout".into() }, at);
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    // Success resets the backoff.
    let next = reg.next_deadline().unwrap();
    reg.poll(next);
    reg.on_outcome(Outcome::Registered { granted_s: 600 }, next);
    assert_eq!(reg.state(), RegState::Registered);
    reg.poll(next + secs(450));
    let steps = reg.on_outcome(Outcome::Unreachable { reason: "timeout".into() }, next + secs(450));
    let Step::Report(report) = &steps[0] else { panic!() };
    assert_eq!(report.retry_in_ms, Some(1000));
}

#[test]
fn keepalives_run_while_registered_and_a_silent_registrar_fails_the_binding() {
    let t0 = Instant::now();
    let mut reg = registered(600, Some(secs(30)), t0);
    assert_eq!(reg.next_deadline(), Some(t0 + secs(30)));
    assert_eq!(sends(&reg.poll(t0 + secs(30))), [Action::KeepAlive]);
    reg.on_outcome(Outcome::KeepAliveOk, t0 + secs(30));
    assert_eq!(reg.next_deadline(), Some(t0 + secs(60)));
    assert_eq!(sends(&reg.poll(t0 + secs(60))), [Action::KeepAlive]);
    let steps = reg.on_outcome(Outcome::KeepAliveFailed { reason: "no answer".into() }, t0 + secs(60));
    assert_eq!(reports(&steps), [(RegState::Failed, None)]);
    assert_eq!(reg.next_deadline(), Some(t0 + secs(61)), "re-register after the first backoff");
}

#[test]
fn a_lost_connection_re_registers_at_once() {
    let t0 = Instant::now();
    let mut reg = registered(600, None, t0);
    let steps = reg.on_outcome(Outcome::ConnectionLost, t0 + secs(5));
    assert_eq!(reports(&steps), [(RegState::Registering, None)]);
    assert_eq!(sends(&steps), [Action::Register { expires_s: 600 }]);
    // Lost again while that REGISTER is out: its own outcome decides.
    assert!(reg.on_outcome(Outcome::ConnectionLost, t0 + secs(5)).is_empty());
    let steps = reg.on_outcome(Outcome::Registered { granted_s: 600 }, t0 + secs(6));
    assert_eq!(reports(&steps), [(RegState::Registered, None)]);
}

#[test]
fn stop_unregisters_once_and_a_racing_register_is_taken_back() {
    let t0 = Instant::now();
    let mut reg = registered(600, Some(secs(30)), t0);
    let steps = reg.stop(t0 + secs(1));
    assert_eq!(sends(&steps), [Action::Unregister]);
    assert_eq!(reports(&steps), [(RegState::Unregistered, None)]);
    assert!(reg.on_outcome(Outcome::Unregistered, t0 + secs(1)).is_empty());
    assert_eq!(reg.next_deadline(), None, "no refresh or keep-alive after stop");

    let mut racing = Registration::new(600, None);
    racing.start(t0);
    assert!(racing.stop(t0).is_empty(), "the REGISTER in flight decides first");
    let steps = racing.on_outcome(Outcome::Registered { granted_s: 600 }, t0);
    assert_eq!(sends(&steps), [Action::Unregister]);

    let mut never = Registration::new(600, None);
    assert!(never.stop(t0).is_empty(), "nothing to undo");
}

#[test]
fn refresh_timing_keeps_a_margin() {
    assert_eq!(refresh_after(600), secs(450));
    assert_eq!(refresh_after(10), secs(5));
    assert_eq!(refresh_after(2), secs(1));
}

#[test]
fn failing_over_registers_at_the_next_target_at_once() {
    let t0 = Instant::now();
    let mut reg = registered(600, Some(secs(30)), t0);
    assert_eq!(sends(&reg.poll(t0 + secs(30))), [Action::KeepAlive]);
    let at = t0 + secs(33);
    let steps = reg.on_outcome(Outcome::FailedOver { reason: "no answer; moving on".into() }, at);
    assert_eq!(reports(&steps), [(RegState::Registering, None)]);
    assert_eq!(sends(&steps), [Action::Register { expires_s: 600 }], "no backoff");
    let steps = reg.on_outcome(Outcome::Registered { granted_s: 600 }, at);
    assert_eq!(reports(&steps), [(RegState::Registered, None)], "the new binding is news");
}

#[test]
fn a_new_public_mapping_renews_every_binding_held_or_sought_and_nothing_else() {
    let with = |state| Report { state, ..Report::unregistered() };
    let reports: std::collections::BTreeMap<&str, Report> = [
        ("registered", with(RegState::Registered)),
        ("registering", with(RegState::Registering)),
        ("failed", with(RegState::Failed)),
        ("stopped", with(RegState::Unregistered)),
    ]
    .into_iter()
    .collect();
    assert_eq!(renew_on_new_mapping(&reports, true), vec![&"failed", &"registered", &"registering"]);
    assert!(renew_on_new_mapping(&reports, false).is_empty(), "the same mapping asks for nothing");
}

//! docs/EVENTS.md stays true: every `nats pub` example in it is an event the services accept.

use common::Envelope;

#[test]
fn every_nats_pub_example_in_the_events_doc_decodes_on_its_subject() {
    let doc = include_str!("../../docs/EVENTS.md");
    let lines: Vec<&str> = doc.lines().collect();
    let mut checked = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("nats pub ") else { continue };
        let subject = rest.trim_end_matches(['\\', ' ']);
        // Examples built from shell variables (`$ORDER`) are templates, not literal events.
        if subject.contains('$') {
            continue;
        }
        let payload = lines[i + 1].trim().trim_end_matches(['\\', ' ']).trim_matches('\'');
        let envelope = Envelope::decode(subject, payload.as_bytes())
            .unwrap_or_else(|e| panic!("the example for {subject} is refused: {e}"));
        let msg_id = lines[i + 2].trim().strip_prefix("-H Nats-Msg-Id:").expect("a Nats-Msg-Id header");
        assert_eq!(msg_id, envelope.id.to_string(), "{subject}: Nats-Msg-Id must be the event id");
        checked.push(envelope.event.event_type());
    }
    let mut missing: Vec<&str> = common::Event::TYPES.iter().copied().filter(|t| !checked.contains(t)).collect();
    // order.created's example is a shell template with placeholders for a real user and product.
    missing.retain(|t| *t != "order.created");
    assert!(missing.is_empty(), "events without a literal `nats pub` example: {missing:?}");
}

/// docs/API-SPEC.md stays true: it documents every problem code with the status the code has, in
/// a table row whose first cell is the status, or in prose next to it (`404 `USER_NOT_FOUND``).
#[test]
fn the_api_spec_documents_every_problem_code_with_its_status() {
    let spec = include_str!("../../docs/API-SPEC.md");
    for code in common::http::Code::ALL {
        let cell = format!("`{}`", code.as_str());
        let status = code.status().as_u16().to_string();
        let lines: Vec<&str> = spec.lines().filter(|l| l.contains(&cell)).collect();
        assert!(
            lines.iter().any(|l| l.split(|c: char| !c.is_ascii_digit()).any(|n| n == status)),
            "docs/API-SPEC.md never names {cell} with its status {status}"
        );
        for row in lines.iter().filter(|l| l.starts_with('|')) {
            let first = row.trim_start_matches('|').split('|').next().unwrap_or_default().trim();
            assert_eq!(first, status, "docs/API-SPEC.md lists {cell} with another status: {row}");
        }
    }
}

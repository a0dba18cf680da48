//! A guest for the host's event-batch tests (host/wasm/src/events_tests.rs), on the event
//! datasource `events` whose records hold `proc.comm` (char[16]), `proc.pid` (u32) and
//! `error` (s32). The `mode` param says what it does with every batch:
//! - `ok`: drops events of `comm` "drop-me", upper-cases the comm of "shout" in place, adds
//!   `parity` ("even"/"odd" pid) and `magnitude` (|error| as u64), counts events per comm on the
//!   datasource `per_comm` (counter `events`, key `comm`) and publishes the counts;
//! - `ignore`: never subscribes (its events must pass through without a call);
//! - refused declarations in `init`: `add-existing` (adds `proc.comm`, a record field),
//!   `add-many` (adds 40 fields, over the default 32);
//! - malformed answers: `bad-size` (a rewritten record one byte longer), `bad-index` (drops an
//!   event past the batch), `wrong-kind` (the string column sent as u64), `short-column` (one
//!   value fewer than kept events), `long-string` (a 2 KiB added value);
//! - floods and failures: `counter-flood` (20,000 label sets published, over the default 16,384), `trap` (panics),
//!   `spin` (never returns), `refuse` (returns an error).
//!
//! It implements the guest export by hand around the SDK's [`Events`] so that the malformed
//! modes can corrupt what the SDK would have sent correctly.

use std::cell::RefCell;

use gadget_sdk::bindings::exports::gadget::api::guest::Guest;
use gadget_sdk::bindings::gadget::api::types::{AddedValues, BatchResult, EventBatch};
use gadget_sdk::{Added, EventCounter, EventSource, Events, Field, GadgetConfig, MapSnapshot};

struct State {
    mode: String,
    comm: Field,
    pid: Field,
    error: Field,
    parity: Added<String>,
    magnitude: Added<u64>,
    counter: EventCounter,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

struct EventsGuest;

impl Guest for EventsGuest {
    fn init(config: GadgetConfig) -> Result<(), String> {
        let mode = config.param("mode").unwrap_or("ok").to_string();
        if mode == "ignore" {
            return Ok(());
        }
        let mut source = EventSource::subscribe(&config, "events")?;
        match mode.as_str() {
            "add-existing" => {
                source.add_field::<u64>("proc.comm", "a record field's name")?;
            }
            "add-many" => {
                for i in 0..40 {
                    source.add_field::<u64>(&format!("f{i}"), "")?;
                }
            }
            _ => {}
        }
        let parity = source.add_field::<String>("parity", "even or odd pid")?;
        let magnitude = source.add_field::<u64>("magnitude", "absolute value of error")?;
        let max_sets = if mode == "counter-flood" { 1 << 20 } else { 64 };
        let counter =
            EventCounter::add("per_comm", "events", &["comm"], "events per comm", max_sets)?;
        let state = State {
            comm: source.field("proc.comm")?,
            pid: source.field("proc.pid")?,
            error: source.field("error")?,
            mode,
            parity,
            magnitude,
            counter,
        };
        STATE.with_borrow_mut(|s| *s = Some(state));
        Ok(())
    }

    fn on_snapshot(_snapshots: Vec<MapSnapshot>) -> Result<(), String> {
        Ok(())
    }

    fn on_events(batch: EventBatch) -> Result<BatchResult, String> {
        let mut events = Events::from_batch(batch)?;
        STATE.with_borrow_mut(|s| {
            let s = s.as_mut().ok_or("on-events before init")?;
            handle(s, &mut events)?;
            let mut result = events.into_result();
            corrupt(&s.mode, &mut result);
            Ok(result)
        })
    }
}

fn handle(s: &mut State, events: &mut Events) -> Result<(), String> {
    match s.mode.as_str() {
        "trap" => panic!("mode trap: panicking on purpose"),
        "spin" => {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        "refuse" => return Err("mode refuse: refusing on purpose".into()),
        "counter-flood" => {
            for i in 0..20_000 {
                s.counter.count(&[&format!("comm{i}")]);
            }
            return s.counter.publish();
        }
        _ => {}
    }
    for i in 0..events.len() {
        let comm = s.comm.str(events.record(i)).into_owned();
        if comm == "drop-me" {
            events.drop_event(i);
            continue;
        }
        if comm == "shout" {
            s.comm.set_str(events.record_mut(i), &comm.to_uppercase());
        }
        let pid = s.pid.u32(events.record(i));
        let parity = if pid.is_multiple_of(2) { "even" } else { "odd" };
        events.set(i, &s.parity, parity.to_string());
        let magnitude = s.error.i64(events.record(i)).unsigned_abs();
        events.set(i, &s.magnitude, magnitude);
        s.counter.count(&[&comm]);
    }
    s.counter.publish()
}

fn corrupt(mode: &str, r: &mut BatchResult) {
    match mode {
        "bad-size" => {
            if let Some((_, bytes)) = r.modified.first_mut() {
                bytes.push(0);
            }
        }
        "bad-index" => r.dropped.push(u32::MAX),
        "wrong-kind" => {
            let n = match &r.added[1] {
                AddedValues::U64(v) => v.len(),
                _ => 0,
            };
            r.added[0] = AddedValues::U64(vec![0; n]);
        }
        "short-column" => {
            if let AddedValues::U64(v) = &mut r.added[1] {
                v.pop();
            }
        }
        "long-string" => {
            if let AddedValues::String(v) = &mut r.added[0] {
                v.iter_mut().for_each(|s| *s = "x".repeat(2048));
            }
        }
        _ => {}
    }
}

gadget_sdk::bindings::__export_gadget_world!(EventsGuest with_types_in gadget_sdk::bindings);

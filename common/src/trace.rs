//! W3C trace context (`traceparent`) through the saga: accepted (or made) at the HTTP entry,
//! written with every outbox row a request or an event causes, sent as a NATS header with the
//! event, read back by the consumer, and so on to the end of the saga. Every log line of one
//! order, in every service, carries the same `trace_id` (a field of its span: `http` for a
//! request, `event` for a consumed message; `LOG_FORMAT=json` shows it under `span`/`spans`).
//!
//! How the context gets from a handler to [`crate::outbox::append`], which runs on the database's
//! writer thread: [`scope`] sets it for a task (the HTTP middleware, the consumer's `prepare`), and
//! [`crate::db::Db::write`] takes the caller's and sets it for the closure it runs on the writer
//! thread ([`on_thread`]). A write outside any context (a timer's sweep) starts a trace of its own.
//!
//! Spans are not exported: only the context travels (exporting over OTLP is not built in).

use std::{cell::Cell, fmt};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

/// The header, on HTTP requests and responses and on NATS messages.
pub const HEADER: &str = "traceparent";
const HTTP_HEADER: HeaderName = HeaderName::from_static(HEADER);

/// One position in a trace: the trace (shared by everything one order causes) and the span (this
/// request, or this event).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceContext {
    /// A new trace (sampled: every trace's logs are kept).
    pub fn root() -> Self {
        let trace_id = nonzero(rand::random::<u128>);
        TraceContext { trace_id, span_id: nonzero(rand::random::<u64>), flags: 1 }
    }

    /// The next step of the same trace: a new span id, the same trace id and flags.
    pub fn child(&self) -> Self {
        TraceContext { span_id: nonzero(rand::random::<u64>), ..*self }
    }

    /// Parses a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`). A later version's value is
    /// read by its first four fields, as the recommendation asks; version `ff`, upper-case hex,
    /// all-zero ids and anything malformed are refused (the caller starts a new trace).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex =
            |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !(hex(version, 2) && hex(trace, 32) && hex(span, 16) && hex(flags, 2)) || version == "ff" {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|&t| t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|&s| s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceContext { trace_id, span_id, flags })
    }

    /// The 32 hex digits every log line of the trace carries.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The header value, version 00.
    pub fn header(&self) -> String {
        format!("00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header())
    }
}

fn nonzero<T: PartialEq + Default>(mut random: impl FnMut() -> T) -> T {
    loop {
        let v = random();
        if v != T::default() {
            return v;
        }
    }
}

tokio::task_local! {
    static TASK: TraceContext;
}

thread_local! {
    static THREAD: Cell<Option<TraceContext>> = const { Cell::new(None) };
}

/// The context of what is running now: the writer thread's closure's, else the task's.
pub fn current() -> Option<TraceContext> {
    THREAD.get().or_else(|| TASK.try_with(|c| *c).ok())
}

/// Runs `fut` with `ctx` as its context.
pub async fn scope<F: Future>(ctx: TraceContext, fut: F) -> F::Output {
    TASK.scope(ctx, fut).await
}

/// Runs `f` with `ctx` as this thread's context (the writer thread, for one write or one
/// message), then puts back what was there.
pub fn on_thread<R>(ctx: Option<TraceContext>, f: impl FnOnce() -> R) -> R {
    let before = THREAD.replace(ctx);
    let _restore = Restore(before);
    f()
}

struct Restore(Option<TraceContext>);

impl Drop for Restore {
    fn drop(&mut self) {
        THREAD.set(self.0);
    }
}

/// The context to send with an event written now: a step of the current trace, or a new trace.
pub fn for_new_event() -> TraceContext {
    current().map_or_else(TraceContext::root, |c| c.child())
}

/// Middleware: the request's context (a child of the caller's `traceparent`, or a new trace) in
/// its extensions (for the `http` span's `trace_id`) and as its task's context, and echoed in the
/// response's `traceparent` so a client can find the trace in the logs.
pub async fn http(mut req: Request, next: Next) -> Response {
    let ctx = req
        .headers()
        .get(&HTTP_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .map_or_else(TraceContext::root, |c| c.child());
    req.extensions_mut().insert(ctx);
    let mut res = scope(ctx, next.run(req)).await;
    if let Ok(value) = HeaderValue::from_str(&ctx.header()) {
        res.headers_mut().insert(HTTP_HEADER, value);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_a_child_keeps_the_trace() {
        let raw = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(raw).expect("valid");
        assert_eq!(ctx.header(), raw);
        assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = ctx.child();
        assert_eq!(child.trace_id(), ctx.trace_id());
        assert_ne!(child.header(), ctx.header());
        assert_eq!(TraceContext::parse(&child.header()), Some(child));
    }

    #[test]
    fn malformed_or_invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?} was accepted");
        }
        // A later version is read by its first four fields.
        assert!(TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future").is_some());
    }

    #[test]
    fn the_thread_context_is_set_for_the_closure_only_and_wins_over_none() {
        assert_eq!(current(), None);
        let ctx = TraceContext::root();
        on_thread(Some(ctx), || {
            assert_eq!(current(), Some(ctx));
            on_thread(None, || assert_eq!(current(), None));
            assert_eq!(current(), Some(ctx));
            assert_eq!(for_new_event().trace_id(), ctx.trace_id());
        });
        assert_eq!(current(), None);
    }

    #[tokio::test]
    async fn a_task_scope_is_seen_inside_it() {
        let ctx = TraceContext::root();
        scope(ctx, async { assert_eq!(current(), Some(ctx)) }).await;
        assert_eq!(current(), None);
        assert_ne!(for_new_event().trace_id(), ctx.trace_id(), "outside any context, a new trace");
    }
}

//! What a `shopctl load` run measured, and how it is shown: the tables, the targets beside the
//! figures, and the same figures as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::raw::Raw;
use super::ready::Ready;
use crate::audit;

/// The targets the figures are judged against (docs/PERFORMANCE.md).
mod target {
    pub const RATIO: f64 = 0.25;
    pub const CPU_US_PER_ORDER: f64 = 300.0;
    pub const KB_PER_ORDER: f64 = 16.0;
    pub const P50_MS_ONE_CLIENT: f64 = 4.0;
    pub const P99_MS_ONE_CLIENT: f64 = 10.0;
    pub const IDLE_MB: f64 = 20.0;
    pub const PEAK_MB: f64 = 50.0;
    pub const READY_MS: f64 = 50.0;
}

/// One order's end, as the client saw it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub latency: Duration,
    pub status: String,
}

/// What one phase measured.
#[derive(Debug, Clone)]
pub struct Phase {
    pub label: String,
    pub concurrency: Option<usize>,
    pub orders: Vec<Placed>,
    /// From the first send to the last saga's end.
    pub elapsed: Duration,
    /// Open loop: orders sent later than scheduled by more than 10 ms.
    pub late: usize,
    /// Events the stream took during the phase.
    pub events: u64,
    /// Per process: (CPU µs, bytes written) during the phase, until the system was at rest.
    pub usage: BTreeMap<String, (u64, u64)>,
    pub generator_cpu_us: u64,
    /// Saga console streams open during the phase (`--console`), and the overviews they got.
    pub consoles: usize,
    pub console_updates: u64,
}

impl Phase {
    fn count(&self) -> usize {
        self.orders.len()
    }

    fn rate(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let mut ms: Vec<f64> = self.orders.iter().map(|o| o.latency.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        percentile(&ms, p)
    }

    fn per_order(&self, value: u64) -> f64 {
        value as f64 / self.count().max(1) as f64
    }

    fn cpu_us(&self) -> f64 {
        self.per_order(self.usage.values().map(|(cpu, _)| cpu).sum())
    }

    fn kb_written(&self) -> f64 {
        self.per_order(self.usage.values().map(|(_, w)| w).sum()) / 1024.0
    }

    fn events_per_order(&self) -> f64 {
        self.per_order(self.events)
    }

    /// Orders by how they ended, other than PAID.
    fn not_paid(&self) -> BTreeMap<&str, usize> {
        let mut ends = BTreeMap::new();
        for o in self.orders.iter().filter(|o| o.status != "PAID") {
            *ends.entry(o.status.as_str()).or_default() += 1;
        }
        ends
    }
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Everything a run measured.
pub struct Report {
    pub raw: Raw,
    pub phases: Vec<Phase>,
    /// Per process: resident memory once started and idle, and the most it ever had.
    pub memory: BTreeMap<String, (u64, u64)>,
    /// Per service: how soon it was ready after its start.
    pub ready: BTreeMap<String, Ready>,
    pub audit: audit::Report,
    pub nats_version: String,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.audit.is_clean()
            && self.phases.iter().all(|p| p.not_paid().is_empty() && p.count() > 0)
            && self.phases.iter().all(|p| p.consoles == 0 || p.console_updates > 0)
    }

    fn ratio(&self, phase: &Phase) -> f64 {
        phase.rate() * phase.events_per_order() / self.raw.default_sync.max(1.0)
    }

    /// The phase with the most orders per second: where throughput and cost are judged.
    fn best(&self) -> Option<&Phase> {
        self.phases.iter().max_by(|a, b| a.rate().total_cmp(&b.rate()))
    }

    fn one_client(&self) -> Option<&Phase> {
        self.phases.iter().find(|p| p.concurrency == Some(1))
    }

    /// The services' memory, nats-server (or the cluster's nodes) left out (the targets are the
    /// services').
    fn services_memory(&self) -> (u64, u64) {
        let services = self.memory.iter().filter(|(n, _)| !n.starts_with("nats-"));
        services.fold((0, 0), |(idle, peak), (_, (i, p))| (idle.max(*i), peak.max(*p)))
    }

    /// The slowest service to be ready: (name, first start, restart).
    fn slowest_ready(&self) -> Option<(&str, Duration, Duration)> {
        let first = self.ready.iter().max_by_key(|(_, r)| r.first_start)?;
        let restart = self.ready.values().map(|r| r.restart).max()?;
        Some((first.0.as_str(), first.1.first_start, restart))
    }

    pub fn print(&self) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let now = time::OffsetDateTime::now_utc();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!();
        println!(
            "load: `shopctl {}` on {} {:02}:{:02} UTC; nproc {cpus}; {}",
            args.join(" "),
            now.date(),
            now.hour(),
            now.minute(),
            self.nats_version
        );
        self.raw.print();
        println!();
        self.print_phases();
        println!();
        self.print_per_process();
        println!();
        self.print_memory();
        println!();
        self.print_targets();
        println!();
        audit::print(&self.audit);
        println!("load: {}", if self.passed() { "PASSED (every order PAID, audit clean)" } else { "FAILED" });
    }

    fn print_phases(&self) {
        println!(
            "{:<14} {:>7} {:>9} {:>8} {:>8} {:>8} {:>13} {:>9} {:>13} {:>7}",
            "phase",
            "orders",
            "orders/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "CPU µs/order",
            "KB/order",
            "events/order",
            "ratio"
        );
        for p in &self.phases {
            println!(
                "{:<14} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>13.0} {:>9.1} {:>13.2} {:>7.3}",
                p.label,
                p.count(),
                p.rate(),
                p.percentile_ms(50.0),
                p.percentile_ms(95.0),
                p.percentile_ms(99.0),
                p.cpu_us(),
                p.kb_written(),
                p.events_per_order(),
                self.ratio(p)
            );
        }
        println!(
            "{:<14} {:>7} {:>9} {:>8} {:>8} {:>8} {:>13} {:>9} {:>13} {:>7}",
            "target",
            "",
            "",
            format!("≤ {}", target::P50_MS_ONE_CLIENT),
            "",
            format!("≤ {}", target::P99_MS_ONE_CLIENT),
            format!("≤ {}", target::CPU_US_PER_ORDER),
            format!("≤ {}", target::KB_PER_ORDER),
            "",
            format!("≥ {}", target::RATIO)
        );
        println!(
            "  (latency: POST /orders with Prefer: wait=10 until the saga ended; the p50/p99 targets are one client's)"
        );
        for p in &self.phases {
            let not_paid = p.not_paid();
            if !not_paid.is_empty() {
                let ends: Vec<String> = not_paid.iter().map(|(s, n)| format!("{s} {n}")).collect();
                println!(
                    "  {}: {} orders did not end PAID ({})",
                    p.label,
                    not_paid.values().sum::<usize>(),
                    ends.join(", ")
                );
            }
            if p.late > 0 {
                println!("  {}: {} orders sent more than 10 ms after their schedule", p.label, p.late);
            }
            if p.consoles > 0 {
                let unwatched = self.phases.iter().find(|q| q.consoles == 0 && q.concurrency == p.concurrency);
                let ratio = unwatched.map_or(String::new(), |q| {
                    format!(
                        "; orders/s {:.2} x and CPU µs/order {:.2} x the same load unwatched",
                        p.rate() / q.rate().max(1e-9),
                        p.cpu_us() / q.cpu_us().max(1e-9)
                    )
                });
                println!(
                    "  {}: {} console stream{} got {} overviews{ratio}",
                    p.label,
                    p.consoles,
                    if p.consoles == 1 { "" } else { "s" },
                    p.console_updates
                );
            }
        }
    }

    fn print_per_process(&self) {
        let width = 11;
        let block = self.phases.len() * (width + 1) - 1;
        println!("{:<18} {:<block$}   KB written per order", "per process", "CPU µs per order");
        let labels: String = self.phases.iter().map(|p| format!(" {:>width$}", p.label)).collect();
        println!("{:<18}{labels}  {labels}", "");
        let row = |name: &str, cell: &dyn Fn(&Phase) -> (f64, f64)| {
            print!("{name:<18}");
            for p in &self.phases {
                print!(" {:>width$.0}", cell(p).0);
            }
            print!("  ");
            for p in &self.phases {
                print!(" {:>width$.1}", cell(p).1);
            }
            println!();
        };
        for name in self.memory.keys() {
            row(name, &|p| {
                let (cpu, written) = p.usage.get(name).copied().unwrap_or_default();
                (p.per_order(cpu), p.per_order(written) / 1024.0)
            });
        }
        row("total", &|p| (p.cpu_us(), p.kb_written()));
        print!("{:<18}", "load generator");
        for p in &self.phases {
            print!(" {:>width$.0}", p.per_order(p.generator_cpu_us));
        }
        println!("   (not in the total)");
    }

    fn print_memory(&self) {
        println!(
            "{:<18} {:>8} {:>8} {:>17} {:>17}",
            "per process", "idle MB", "peak MB", "ready ms (first)", "ready ms (again)"
        );
        for (name, (idle, peak)) in &self.memory {
            let (first, again) = match self.ready.get(name) {
                Some(r) => (format!("{:.1}", ms(r.first_start)), format!("{:.1}", ms(r.restart))),
                None => ("-".into(), "-".into()),
            };
            println!("{name:<18} {:>8.1} {:>8.1} {first:>17} {again:>17}", mb(*idle), mb(*peak));
        }
        let le = |v: f64| format!("≤ {v}");
        println!(
            "{:<18} {:>8} {:>8} {:>17} {:>17}",
            "target (services)",
            le(target::IDLE_MB),
            le(target::PEAK_MB),
            le(target::READY_MS),
            le(target::READY_MS)
        );
        println!(
            "  (idle: VmRSS before the first phase; peak: VmHWM at the end; ready: spawn to the first 200 of \
             /health/ready on an empty data folder, then again on it, against a scratch nats-server)"
        );
    }

    fn print_targets(&self) {
        println!("targets (everything on this machine):");
        if let Some(best) = self.best() {
            let (ratio, cpu, kb) = (self.ratio(best), best.cpu_us(), best.kb_written());
            println!("  ratio ≥ {}: {ratio:.3} at {} ({})", target::RATIO, best.label, mark(ratio >= target::RATIO));
            println!(
                "  CPU ≤ {} µs/order over all processes: {cpu:.0} at {} ({})",
                target::CPU_US_PER_ORDER,
                best.label,
                mark(cpu <= target::CPU_US_PER_ORDER)
            );
            println!(
                "  written ≤ {} KB/order: {kb:.1} at {} ({})",
                target::KB_PER_ORDER,
                best.label,
                mark(kb <= target::KB_PER_ORDER)
            );
        }
        match self.one_client() {
            Some(one) => {
                let (p50, p99) = (one.percentile_ms(50.0), one.percentile_ms(99.0));
                println!(
                    "  one client p50 ≤ {} ms, p99 ≤ {} ms: {p50:.2} ms, {p99:.2} ms ({})",
                    target::P50_MS_ONE_CLIENT,
                    target::P99_MS_ONE_CLIENT,
                    mark(p50 <= target::P50_MS_ONE_CLIENT && p99 <= target::P99_MS_ONE_CLIENT)
                );
            }
            None => println!("  one client p50/p99: not measured (no phase of one client)"),
        }
        let (idle, peak) = self.services_memory();
        println!(
            "  each service ≤ {} MB idle, ≤ {} MB under load: largest {:.1} MB idle, {:.1} MB peak ({})",
            target::IDLE_MB,
            target::PEAK_MB,
            mb(idle),
            mb(peak),
            mark(mb(idle) <= target::IDLE_MB && mb(peak) <= target::PEAK_MB)
        );
        if let Some((name, first, again)) = self.slowest_ready() {
            println!(
                "  each service ready ≤ {} ms after its start: slowest {:.1} ms ({name}, first start), {:.1} ms on a \
                 restart ({})",
                target::READY_MS,
                ms(first),
                ms(again),
                mark(ms(first).max(ms(again)) <= target::READY_MS)
            );
        }
    }

    pub fn to_json(&self) -> Value {
        let phases: Vec<Value> = self
            .phases
            .iter()
            .map(|p| {
                let per_process: serde_json::Map<String, Value> = p
                    .usage
                    .iter()
                    .map(|(n, (cpu, w))| {
                        let figures =
                            json!({"cpuUsPerOrder": p.per_order(*cpu), "kbWrittenPerOrder": p.per_order(*w) / 1024.0});
                        (n.clone(), figures)
                    })
                    .collect();
                json!({
                    "phase": p.label, "concurrency": p.concurrency, "orders": p.count(), "ordersPerSec": p.rate(),
                    "p50Ms": p.percentile_ms(50.0), "p95Ms": p.percentile_ms(95.0), "p99Ms": p.percentile_ms(99.0),
                    "cpuUsPerOrder": p.cpu_us(), "kbWrittenPerOrder": p.kb_written(),
                    "eventsPerOrder": p.events_per_order(), "ratio": self.ratio(p), "late": p.late,
                    "notPaid": p.not_paid(), "loadGeneratorCpuUsPerOrder": p.per_order(p.generator_cpu_us),
                    "perProcess": per_process, "consoles": p.consoles, "consoleUpdates": p.console_updates,
                })
            })
            .collect();
        let memory: serde_json::Map<String, Value> = self
            .memory
            .iter()
            .map(|(n, (idle, peak))| (n.clone(), json!({"idleMb": mb(*idle), "peakMb": mb(*peak)})))
            .collect();
        let ready: serde_json::Map<String, Value> = self
            .ready
            .iter()
            .map(|(n, r)| (n.clone(), json!({"firstStartMs": ms(r.first_start), "restartMs": ms(r.restart)})))
            .collect();
        json!({
            "command": std::env::args().skip(1).collect::<Vec<_>>(),
            "nprocs": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "natsServer": self.nats_version,
            "raw": {"messages": self.raw.messages, "messageBytes": self.raw.size, "defaultSync": self.raw.default_sync,
                    "projectSync": self.raw.project_sync, "project": self.raw.project},
            "phases": phases,
            "memory": memory,
            "ready": ready,
            "auditClean": self.audit.is_clean(),
            "passed": self.passed(),
        })
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn orders_that_did_not_end_paid_are_counted_by_how_they_ended() {
        let placed = |status: &str| Placed { latency: Duration::from_millis(3), status: status.into() };
        let phase = Phase {
            label: "1 client".into(),
            concurrency: Some(1),
            orders: vec![
                placed("PAID"),
                placed("OUT_OF_STOCK"),
                placed("PAID"),
                placed("OUT_OF_STOCK"),
                placed("EXPIRED"),
            ],
            elapsed: Duration::from_secs(1),
            late: 0,
            events: 20,
            usage: BTreeMap::from([("svc-order".into(), (1000, 4096)), ("nats-server".into(), (500, 1024))]),
            generator_cpu_us: 0,
            consoles: 0,
            console_updates: 0,
        };
        assert_eq!(phase.not_paid(), BTreeMap::from([("EXPIRED", 1), ("OUT_OF_STOCK", 2)]));
        assert_eq!(phase.events_per_order(), 4.0);
        assert_eq!(phase.cpu_us(), 300.0);
        assert_eq!(phase.kb_written(), 1.0);
        assert_eq!(phase.rate(), 5.0);
    }
}

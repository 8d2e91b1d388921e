//! [`Generator`]: the stream of standard events, as [`Event`]s or as NDJSON.

use std::fmt;

use loupe_event::Event;
use loupe_event::time::MAX_TIMESTAMP_US;

use crate::WorkloadConfig;
use crate::draw::{Draw, Drawer, MAX_JITTER_US};
use crate::incident::{CompiledIncident, Effect, Truth, WorkloadError};
use crate::render::{Clock, EventSink, JsonSink, Rate, render};
use crate::rng::{WorkloadRng, mix64};
use crate::world::{World, world};

/// Bytes reserved per event before writing NDJSON (a little above the average line).
const LINE_BYTES: usize = 1_800;

/// A deterministic, endless stream of standard wide events (see the crate docs).
///
/// As an [`Iterator`] it yields [`Event`]s (it never ends: use `take`);
/// [`write_ndjson`](Generator::write_ndjson) appends the same events as JSON lines, much faster.
/// Both advance the same stream: a generator yields each event once, in whichever form asked.
#[derive(Clone)]
pub struct Generator {
    world: &'static World,
    drawer: Drawer,
    incident: Option<CompiledIncident>,
    clock: Clock,
    start_us: i64,
    slot_us: f64,
    /// The next slot: event `i` (before pre-sampling) belongs at `start_us + i * slot_us`.
    slot: u64,
    /// Pre-sampling: the probability of keeping an event, and the coins (a stream of their own,
    /// so the events kept are drawn like any others).
    keep: Option<(f64, WorkloadRng)>,
    rate: Rate,
    truth: Truth,
}

impl Generator {
    /// A generator for `config`.
    ///
    /// # Panics
    /// If the configuration is invalid: see [`Generator::try_new`].
    pub fn new(config: WorkloadConfig) -> Self {
        Generator::try_new(config).unwrap_or_else(|e| panic!("invalid workload configuration: {e}"))
    }

    /// A generator for `config`, or why it cannot be one: the incident's cause names a field
    /// that is not categorical or a value that never occurs, its effect is out of range,
    /// its window is empty, `events_per_second` is not positive, `pre_sample_rate` is below 1,
    /// or `start_us` is before 1970 (plus the few seconds of jitter) or after 9999.
    pub fn try_new(config: WorkloadConfig) -> Result<Self, WorkloadError> {
        let out_of_range = |what, value| Err(WorkloadError::OutOfRange { what, value });
        let eps = config.events_per_second;
        if !(eps.is_finite() && eps > 0.0) {
            return out_of_range("events_per_second", eps);
        }
        if !(MAX_JITTER_US..MAX_TIMESTAMP_US / 2).contains(&config.start_us) {
            return out_of_range("start_us", config.start_us as f64);
        }
        let keep = match config.pre_sample_rate {
            None => None,
            Some(r) if r.is_finite() && r >= 1.0 => Some((
                1.0 / r,
                WorkloadRng::seeded(mix64(config.seed ^ 0x005A_3F1E)),
            )),
            Some(r) => return out_of_range("pre_sample_rate", r),
        };
        if let Some(i) = &config.incident
            && i.end_us <= i.start_us
        {
            return out_of_range(
                "incident window length (us)",
                (i.end_us - i.start_us) as f64,
            );
        }
        let world = world();
        let incident = config
            .incident
            .as_ref()
            .map(|i| CompiledIncident::new(world, i))
            .transpose()?;
        Ok(Generator {
            world,
            drawer: Drawer::new(config.seed),
            incident,
            clock: Clock::new(),
            start_us: config.start_us,
            slot_us: 1e6 / eps,
            slot: 0,
            keep,
            rate: Rate::new(config.pre_sample_rate.unwrap_or(1.0)),
            truth: Truth {
                incident: config.incident,
                ..Truth::default()
            },
        })
    }

    /// The incident and exact counts over every event generated so far.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// Appends the next `n` events to `out`, one JSON object per line (`\n`-terminated), with
    /// flat dotted field names. The lines decode with [`loupe_event::decode_body`] to the same
    /// events the iterator would have yielded.
    pub fn write_ndjson(&mut self, n: usize, out: &mut Vec<u8>) {
        out.reserve(n.saturating_mul(LINE_BYTES));
        for _ in 0..n {
            let d = self.next_draw();
            let mut sink = JsonSink::begin(out);
            render(self.world, &d, &mut self.clock, self.rate, &mut sink);
            sink.end();
        }
    }

    /// The next event.
    pub fn next_event(&mut self) -> Event {
        let d = self.next_draw();
        let mut sink = EventSink::default();
        render(self.world, &d, &mut self.clock, self.rate, &mut sink);
        sink.event
    }

    /// The next event's draw, with the incident applied and counted.
    pub(crate) fn next_draw(&mut self) -> Draw {
        loop {
            let slot_us = self.start_us + (self.slot as f64 * self.slot_us).round() as i64;
            self.slot += 1;
            if let Some((keep, coins)) = &mut self.keep
                && !coins.chance(*keep)
            {
                continue;
            }
            let mut d = self.drawer.draw(self.world, slot_us);
            self.truth.total += 1;
            if let Some(incident) = &self.incident
                && incident.in_window(d.ts_us)
            {
                self.truth.in_window += 1;
                if incident.matches(self.world, &d) {
                    self.truth.matched += 1;
                    match incident.effect {
                        Effect::Latency { multiplier } => {
                            d.duration_ms *= multiplier;
                            self.truth.affected += 1;
                        }
                        Effect::ErrorRate { probability } => {
                            if d.incident_coin < probability {
                                d.error = true;
                                self.truth.affected += 1;
                            }
                        }
                    }
                }
            }
            return d;
        }
    }
}

impl fmt::Debug for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The world is large and the same for every generator: leave it out.
        f.debug_struct("Generator")
            .field("start_us", &self.start_us)
            .field("slot_us", &self.slot_us)
            .field("slot", &self.slot)
            .field("rate", &self.rate)
            .field("truth", &self.truth)
            .finish_non_exhaustive()
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        Some(self.next_event())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

//! Figures read at each scrape from where they are counted as things
//! happen, outside the run loop: the SIP messages rsipstack and the gate
//! saw (a report per message through the loop would cost more than the
//! count), and the clients connected to the control socket and the
//! browser bridge (their seats).

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::sip::traffic::SipCounts;

type Source<T> = Box<dyn Fn() -> T + Send + Sync>;

/// Where each pulled figure comes from.
pub struct Pulled {
    pub sip: Source<SipCounts>,
    pub control_clients: Source<usize>,
    pub bridge_clients: Source<usize>,
}

impl fmt::Debug for Pulled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pulled")
    }
}

impl Collector for Pulled {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let sip = (self.sip)();
        let requests =
            sip.requests.iter().map(|(flow, method, n)| ([("direction", flow.as_str()), ("method", *method)], *n));
        counters(&mut encoder, "sip_requests", "SIP requests, in and out, by method.", requests)?;
        let responses = sip.responses.iter().map(|(flow, method, class, n)| {
            ([("direction", flow.as_str()), ("method", *method), ("class", *class)], *n)
        });
        let help = "SIP responses, in and out, by their request's method and status class.";
        counters(&mut encoder, "sip_responses", help, responses)?;
        let refused = sip.refused.iter().map(|(why, n)| ([("reason", *why)], *n));
        let help = "Inbound SIP messages never handed to the stack: scanners, over the rate limit, invalid (answered) or unreadable (dropped).";
        counters(&mut encoder, "sip_refused", help, refused)?;
        gauge(&mut encoder, "control_clients", "Clients connected to the control socket.", (self.control_clients)())?;
        gauge(&mut encoder, "bridge_clients", "Pages connected to the browser bridge.", (self.bridge_clients)())
    }
}

/// A counter family whose series are all known now; `help` ends with its
/// full stop, as the registry's own add one.
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: usize) -> fmt::Result {
    let metric = ConstGauge::new(value as i64);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

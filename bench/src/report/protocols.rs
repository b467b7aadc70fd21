//! The report's section on the steady run over HTTP/2 and TLS.

use super::Report;
use crate::protocols::Protocol;
use std::fmt::Write as _;

impl Report {
    /// The steady table again for each protocol measured, if any was.
    pub(super) fn protocols(&self, md: &mut String) {
        let measured: Vec<Protocol> = Protocol::ALL
            .into_iter()
            .filter(|p| {
                self.comparison
                    .outcomes
                    .iter()
                    .any(|o| o.scenario == p.scenario())
            })
            .collect();
        if measured.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "\n### Over HTTP/2 and TLS\n\nThe same steady load over other protocols. Beacon and the bare \
             client speak it to the instances themselves: **h2c** is HTTP/2 without TLS (prior knowledge) to \
             the plain instances; **TLS** is HTTPS to three instances serving it with a throwaway CA, HTTP/2 \
             negotiated by ALPN. HAProxy and nginx terminate it — h2c (`proto h2`, `listen ... http2`) or \
             TLS with HTTP/2 by ALPN (`ssl crt ... alpn h2,http/1.1`, `listen ... ssl http2`) — and speak \
             HTTP/1.1 to the plain instances, as they are usually deployed. \"vs bare client\" compares with \
             the bare client over the same protocol in the same run.\n"
        );
        for protocol in measured {
            let title = match protocol {
                Protocol::H2c => "h2c (HTTP/2, no TLS)",
                Protocol::Tls => "TLS (HTTP/2 by ALPN)",
            };
            let _ = writeln!(md, "\n**{title}**\n");
            self.steady_table(md, protocol.scenario());
        }
    }
}

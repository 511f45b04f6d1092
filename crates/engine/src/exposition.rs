//! The two text formats the engine's metrics are served in, and how a scraper's `Accept`
//! header picks one.
//!
//! prometheus-client writes OpenMetrics 1.0.0 text: a counter family `x` is announced as
//! `# TYPE x counter` and its sample is `x_total`, units get a `# UNIT` line, and the text
//! ends in `# EOF`. That is what Prometheus asks for first, and it must be served as
//! [`OPENMETRICS_CONTENT_TYPE`]. The older Prometheus text format (0.0.4), which
//! `promtool check metrics`, `curl` users and scrapers that do not ask for OpenMetrics read,
//! names the counter family by its sample (`# TYPE x_total counter`): read as 0.0.4, the
//! OpenMetrics text has a `x_total` sample without help or type (promtool: "no help text"
//! for every counter, exit 3). [`prometheus_text`] rewrites the one into the other.

use std::fmt::Write as _;

/// The content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text format of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// OpenMetrics 1.0.0 text, as prometheus-client writes it.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    PrometheusText,
}

impl MetricsFormat {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            MetricsFormat::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            MetricsFormat::PrometheusText => PROMETHEUS_TEXT_CONTENT_TYPE,
        }
    }

    /// The format a request's `Accept` header prefers (RFC 9110 §12.5.1): each format takes
    /// the quality of the most specific media range that matches it
    /// (`application/openmetrics-text` with a `version` of 1.0.0 or 0.0.1, or none;
    /// `text/plain` with a `version` of 0.0.4, or none; `type/*`; `*/*`), and the higher
    /// quality wins. The Prometheus text format is the default: without `Accept`, on a tie,
    /// and when the header accepts neither (a scraper is better served than refused).
    pub fn negotiate(accept: Option<&str>) -> MetricsFormat {
        let Some(accept) = accept else {
            return MetricsFormat::PrometheusText;
        };
        let open = quality(
            accept,
            "application",
            "openmetrics-text",
            &["1.0.0", "0.0.1"],
        );
        let text = quality(accept, "text", "plain", &["0.0.4"]);
        if open > text {
            MetricsFormat::OpenMetrics
        } else {
            MetricsFormat::PrometheusText
        }
    }
}

/// The quality `accept` gives to `kind/sub` (whose `version` parameter, when a range has
/// one, must be one of `versions`): that of the most specific matching range, 0 when none
/// matches. Qualities are in thousandths, as RFC 9110 allows three decimals.
fn quality(accept: &str, kind: &str, sub: &str, versions: &[&str]) -> u16 {
    // (specificity, quality) of the best match so far.
    let mut best: Option<(u8, u16)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let Some((k, s)) = parts.next().and_then(|m| m.trim().split_once('/')) else {
            continue;
        };
        let (k, s) = (k.trim(), s.trim());
        let mut q = 1000;
        let mut version_ok = true;
        let mut has_params = false;
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "q" => q = parse_quality(value),
                "version" => {
                    has_params = true;
                    version_ok = versions.contains(&value);
                }
                _ => {}
            }
        }
        let specificity = if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) {
            if !version_ok {
                continue;
            }
            if has_params {
                3
            } else {
                2
            }
        } else if k.eq_ignore_ascii_case(kind) && s == "*" {
            1
        } else if k == "*" && s == "*" {
            0
        } else {
            continue;
        };
        if best.is_none_or(|(sp, _)| specificity > sp) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// `0.5` → 500; anything that is not a quality counts as 0 (not acceptable).
fn parse_quality(v: &str) -> u16 {
    match v.parse::<f64>() {
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
        _ => 0,
    }
}

/// The Prometheus text format 0.0.4 of prometheus-client's OpenMetrics text: a counter's
/// `# HELP`/`# TYPE` name its `_total` sample, an `info` family becomes a gauge named by its
/// `_info` sample, `unknown` is `untyped`, and `# UNIT`, `# EOF`, `_created` samples and
/// exemplars (none of which 0.0.4 has) are left out. Samples and labels are unchanged
/// (prometheus-client writes no timestamps).
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The family being copied: its OpenMetrics name and type.
    let mut family: Option<(&str, &str)> = None;
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family = Some((name, kind));
            let (name04, kind04) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_string(), kind),
                _ => (name.to_string(), "untyped"),
            };
            if let Some((_, text)) = help.take().filter(|(n, _)| *n == name) {
                // OpenMetrics escapes `"` in help, 0.0.4 does not.
                let _ = writeln!(out, "# HELP {name04} {}", text.replace("\\\"", "\""));
            }
            let _ = writeln!(out, "# TYPE {name04} {kind04}");
        } else if line.starts_with('#') || line.is_empty() {
            // `# UNIT`, `# EOF`, other comments.
        } else {
            let sample = without_exemplar(line);
            let created = family.is_some_and(|(name, kind)| {
                matches!(kind, "counter" | "histogram" | "summary")
                    && sample.strip_prefix(name).is_some_and(|s| {
                        s.strip_prefix("_created")
                            .is_some_and(|s| s.starts_with([' ', '{']))
                    })
            });
            if !created {
                out.push_str(sample);
                out.push('\n');
            }
        }
    }
    out
}

/// A sample line without its exemplar (` # {...} value`), which follows the value.
fn without_exemplar(line: &str) -> &str {
    // Past the label set, whose quoted values may hold anything (escaped).
    let mut end_of_labels = 0;
    if let Some(open) = line.find('{') {
        let (mut quoted, mut escaped) = (false, false);
        for (i, c) in line[open..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '}' if !quoted => {
                    end_of_labels = open + i + 1;
                    break;
                }
                _ => {}
            }
        }
    }
    match line[end_of_labels..].find(" # ") {
        Some(at) => &line[..end_of_labels + at],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetricsFormat::{OpenMetrics, PrometheusText};

    #[test]
    fn accept_headers_pick_the_format() {
        // Prometheus 2.x's own scrape header.
        let prometheus = "application/openmetrics-text;version=1.0.0,\
                          application/openmetrics-text;version=0.0.1;q=0.75,\
                          text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, want) in [
            (None, PrometheusText),
            (Some(prometheus), OpenMetrics),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("application/openmetrics-text; version=0.0.1"),
                OpenMetrics,
            ),
            (
                Some("Application/OpenMetrics-Text; q=0.9, text/plain; q=0.8"),
                OpenMetrics,
            ),
            (
                Some("text/plain;version=0.0.4;q=0.5, application/openmetrics-text;q=0.4"),
                PrometheusText,
            ),
            (Some("*/*"), PrometheusText),
            (Some("text/plain"), PrometheusText),
            (Some("application/*"), OpenMetrics),
            (Some("application/json"), PrometheusText),
            (Some(""), PrometheusText),
            (Some("garbage;;;,/,q=2"), PrometheusText),
            // An unknown version does not match; the wildcard then decides.
            (
                Some("application/openmetrics-text;version=9.9.9, */*;q=0.1"),
                PrometheusText,
            ),
            (
                Some("application/openmetrics-text;q=0, */*"),
                PrometheusText,
            ),
            (Some("text/plain;q=0, */*;q=0.3"), OpenMetrics),
        ] {
            assert_eq!(MetricsFormat::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn openmetrics_becomes_prometheus_text() {
        let om = "# HELP p_flow_installs Pod flow installs confirmed.\n\
                  # TYPE p_flow_installs counter\n\
                  p_flow_installs_total 3\n\
                  p_flow_installs_created 1700000000.0\n\
                  # HELP p_lag Journal \\\"lag\\\".\n\
                  # TYPE p_lag gauge\n\
                  p_lag 0\n\
                  # HELP p_stage Stages.\n\
                  # TYPE p_stage histogram\n\
                  # UNIT p_stage seconds\n\
                  p_stage_sum{stage=\"a # {b}\"} 0.5\n\
                  p_stage_count{stage=\"a # {b}\"} 1\n\
                  p_stage_bucket{stage=\"a # {b}\",le=\"+Inf\"} 1 # {trace=\"x\"} 0.5\n\
                  # HELP p_build Build.\n\
                  # TYPE p_build info\n\
                  p_build_info{version=\"1\"} 1\n\
                  # HELP p_x X.\n\
                  # TYPE p_x unknown\n\
                  p_x 2\n\
                  # EOF\n";
        let want = "# HELP p_flow_installs_total Pod flow installs confirmed.\n\
                    # TYPE p_flow_installs_total counter\n\
                    p_flow_installs_total 3\n\
                    # HELP p_lag Journal \"lag\".\n\
                    # TYPE p_lag gauge\n\
                    p_lag 0\n\
                    # HELP p_stage Stages.\n\
                    # TYPE p_stage histogram\n\
                    p_stage_sum{stage=\"a # {b}\"} 0.5\n\
                    p_stage_count{stage=\"a # {b}\"} 1\n\
                    p_stage_bucket{stage=\"a # {b}\",le=\"+Inf\"} 1\n\
                    # HELP p_build_info Build.\n\
                    # TYPE p_build_info gauge\n\
                    p_build_info{version=\"1\"} 1\n\
                    # HELP p_x X.\n\
                    # TYPE p_x untyped\n\
                    p_x 2\n";
        assert_eq!(prometheus_text(om), want);
    }

    #[test]
    fn the_engines_metrics_convert_family_by_family() {
        let m = crate::metrics::Metrics::default();
        m.flow_installs.inc();
        let om = m.encode();
        assert!(om.ends_with("# EOF\n"), "{om}");
        let text = prometheus_text(&om);
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        assert!(
            text.contains(
                "# TYPE podport_flow_installs_total counter\npodport_flow_installs_total 1\n"
            ),
            "{text}"
        );
        // Every sample line's family has a HELP and a TYPE.
        let typed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let helped = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(helped, typed.len(), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(f)))
                .unwrap_or(name);
            assert!(typed.contains(&family), "{name} has no TYPE in\n{text}");
        }
    }
}

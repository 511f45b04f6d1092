//! The bench's charts: small hand-written SVG (a plotting crate would bring far more code than
//! the two charts need). Text is escaped; sizes are fixed so the files diff well.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn header(out: &mut String, title: &str, height: f64) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" \
         viewBox=\"0 0 {W} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{x}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{t}</text>\n",
        x = W / 2.0,
        t = esc(title)
    );
}

/// Milliseconds as a short axis label.
fn ms_label(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} s", trim(v / 1000.0))
    } else {
        format!("{} ms", trim(v))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One line of a CDF chart.
pub(crate) struct Series<'a> {
    pub label: &'a str,
    pub color: &'a str,
    /// Values in milliseconds.
    pub values: &'a [f64],
}

/// The distribution of each series as a CDF on a logarithmic time axis (decades of ms), with
/// optional vertical markers (label, ms).
pub(crate) fn cdf(
    title: &str,
    x_label: &str,
    series: &[Series],
    markers: &[(&str, f64)],
) -> String {
    let all = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .chain(markers.iter().map(|m| m.1))
        .filter(|v| *v > 0.0);
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() {
        (lo, hi)
    } else {
        (1.0, 10.0)
    };
    let d0 = lo.log10().floor();
    let d1 = hi.log10().ceil().max(d0 + 1.0);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |v: f64| LEFT + (v.max(10f64.powf(d0)).log10() - d0) / (d1 - d0) * pw;
    let y = |f: f64| TOP + (1.0 - f) * ph;
    let mut out = String::new();
    header(&mut out, title, H);
    // Grid and axes.
    for k in 0..=4 {
        let f = f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{p}%</text>",
            x2 = W - RIGHT,
            yy = y(f),
            tx = LEFT - 6.0,
            ty = y(f) + 4.0,
            p = k * 25
        );
    }
    let mut d = d0;
    while d <= d1 + 1e-9 {
        let v = 10f64.powf(d);
        let _ = writeln!(
            out,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{yb}\" stroke=\"#ddd\"/>\
             <text x=\"{xx:.1}\" y=\"{ty}\" text-anchor=\"middle\">{l}</text>",
            xx = x(v),
            yb = H - BOTTOM,
            ty = H - BOTTOM + 16.0,
            l = ms_label(v)
        );
        d += 1.0;
    }
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\
         <text x=\"{cx}\" y=\"{by}\" text-anchor=\"middle\">{xl}</text>\
         <text x=\"16\" y=\"{cy}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {cy})\">Pods ready</text>",
        cx = LEFT + pw / 2.0,
        by = H - BOTTOM + 36.0,
        xl = esc(x_label),
        cy = TOP + ph / 2.0
    );
    for (label, v) in markers {
        let _ = writeln!(
            out,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{yb}\" stroke=\"#888\" \
             stroke-dasharray=\"4 3\"/><text x=\"{tx:.1}\" y=\"{ty}\" fill=\"#555\">{l}</text>",
            xx = x(*v),
            yb = H - BOTTOM,
            tx = x(*v) + 4.0,
            ty = TOP + ph - 8.0,
            l = esc(label)
        );
    }
    for (k, s) in series.iter().enumerate() {
        let mut v: Vec<f64> = s.values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len().max(1) as f64;
        // A step line: at each value the fraction ready jumps.
        let mut pts = format!("{:.1},{:.1}", x(v.first().copied().unwrap_or(lo)), y(0.0));
        for (i, val) in v.iter().enumerate() {
            let _ = write!(
                pts,
                " {:.1},{:.1} {:.1},{:.1}",
                x(*val),
                y(i as f64 / n),
                x(*val),
                y((i + 1) as f64 / n)
            );
        }
        let _ = writeln!(
            out,
            "<polyline points=\"{pts}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>\
             <rect x=\"{lx}\" y=\"{ly}\" width=\"14\" height=\"4\" fill=\"{c}\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{l}</text>",
            c = s.color,
            lx = LEFT + 10.0,
            ly = TOP + 10.0 + 18.0 * k as f64,
            tx = LEFT + 30.0,
            ty = TOP + 16.0 + 18.0 * k as f64,
            l = esc(s.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// One row of a stage chart: p50, p90 and p99 of a stage in ms, over `n` Pods.
pub(crate) struct StageRow {
    pub label: String,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// Horizontal bars, one per stage: the bar is the median, the whisker runs to p99 with a tick
/// at p90.
pub(crate) fn stages(title: &str, rows: &[StageRow]) -> String {
    let label_w = 300.0;
    let row_h = 34.0;
    let height = TOP + BOTTOM + row_h * rows.len().max(1) as f64;
    let pw = W - label_w - RIGHT - 10.0;
    let max = rows.iter().map(|r| r.p99).fold(0.0f64, f64::max).max(1e-3);
    let step = nice_step(max / 5.0);
    let top = (max / step).ceil() * step;
    let x = |v: f64| label_w + v.max(0.0) / top * pw;
    let mut out = String::new();
    header(&mut out, title, height);
    let yb = height - BOTTOM;
    let mut t = 0.0;
    while t <= top + step / 2.0 {
        let _ = writeln!(
            out,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{yb}\" stroke=\"#ddd\"/>\
             <text x=\"{xx:.1}\" y=\"{ty}\" text-anchor=\"middle\">{l}</text>",
            xx = x(t),
            ty = yb + 16.0,
            l = ms_label(t)
        );
        t += step;
    }
    for (i, r) in rows.iter().enumerate() {
        let cy = TOP + row_h * (i as f64 + 0.5);
        let _ = writeln!(
            out,
            "<text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{l}</text>\
             <rect x=\"{label_w}\" y=\"{by:.1}\" width=\"{bw:.1}\" height=\"16\" fill=\"#4a7ebb\"/>\
             <line x1=\"{x50:.1}\" x2=\"{x99:.1}\" y1=\"{cy:.1}\" y2=\"{cy:.1}\" stroke=\"#222\"/>\
             <line x1=\"{x90:.1}\" x2=\"{x90:.1}\" y1=\"{a:.1}\" y2=\"{b:.1}\" stroke=\"#222\"/>\
             <line x1=\"{x99:.1}\" x2=\"{x99:.1}\" y1=\"{a2:.1}\" y2=\"{b2:.1}\" stroke=\"#222\"/>",
            tx = label_w - 8.0,
            ty = cy + 4.0,
            l = esc(&r.label),
            by = cy - 8.0,
            bw = x(r.p50) - label_w,
            x50 = x(r.p50),
            x90 = x(r.p90),
            x99 = x(r.p99),
            a = cy - 5.0,
            b = cy + 5.0,
            a2 = cy - 8.0,
            b2 = cy + 8.0,
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"{label_w}\" x2=\"{label_w}\" y1=\"{TOP}\" y2=\"{yb}\" stroke=\"#333\"/>\
         <text x=\"{cx}\" y=\"{ly}\" text-anchor=\"middle\">bar: median; whisker: p90 (short tick) to p99 (long tick)</text>",
        cx = label_w + pw / 2.0,
        ly = yb + 36.0
    );
    out.push_str("</svg>\n");
    out
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_step(v: f64) -> f64 {
    let p = 10f64.powf(v.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= v)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-formed enough for any SVG reader: one root, balanced elements, escaped text.
    fn check(svg: &str) {
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let opened = svg.matches("<text").count();
        assert_eq!(opened, svg.matches("</text>").count());
    }

    #[test]
    fn charts_are_well_formed_svg() {
        let a = [1.5, 3.0, 40.0, 41.0];
        let b = [2100.0, 2200.0];
        let svg = cdf(
            "stall <&>",
            "ms after the thaw",
            &[
                Series {
                    label: "podport",
                    color: "#1f77b4",
                    values: &a,
                },
                Series {
                    label: "legacy",
                    color: "#d62728",
                    values: &b,
                },
            ],
            &[("switch done", 35.0)],
        );
        check(&svg);
        assert!(svg.contains("stall &lt;&amp;&gt;"));
        check(&cdf("empty", "x", &[], &[]));
        let svg = stages(
            "stages",
            &[StageRow {
                label: "a → b".into(),
                p50: 1.0,
                p90: 2.0,
                p99: 3.0,
            }],
        );
        check(&svg);
        check(&stages("none", &[]));
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(120.0), 200.0);
    }
}

//! A guest for the host's tests: it misbehaves in the way the `mode` param says, on every
//! snapshot (`trap`, `spin`, `grow`, `refuse`), at init (`refuse-init`), or never (`ok`).
//! `probe` reports what the sandbox lets it see: the wall clock (seconds since the epoch) and
//! whether a TCP connection to the `addr` param succeeds (1) or not (0), as gauges.
//! Floods of what the host must bound (issue #11): `flood-keys` (8,000 samples, each with its own
//! label key), `flood-values` (100,000 samples with distinct label values), `ignore-budget` (the
//! same flood, the host's refusal ignored), `label-le` (a label Prometheus reserves), `log-flood`
//! (a megabyte of log lines with newlines and escape sequences).

use gadget_sdk::{LogLevel, log};

use gadget_sdk::{Datasource, Gadget, GadgetConfig, Log2Histogram, MapSnapshot, Sample};

struct Misbehaving {
    mode: String,
    addr: String,
    out: Datasource,
    hoard: Vec<Vec<u8>>,
}

impl Gadget for Misbehaving {
    fn init(config: &GadgetConfig) -> Result<Self, String> {
        let mode = config.param("mode").unwrap_or("ok").to_string();
        if mode == "refuse-init" {
            return Err("mode refuse-init: refusing on purpose".into());
        }
        let ds = config
            .datasources
            .first()
            .ok_or("no datasource in gadget.yaml")?;
        let spec = ds
            .histogram_spec("latency")?
            .with_gauge("clock", "s", "wall clock the guest sees")
            .with_gauge("network", "", "1 if a TCP connection to addr succeeded");
        let out = Datasource::add(spec)?;
        Ok(Misbehaving {
            addr: config.param("addr").unwrap_or("127.0.0.1:9").to_string(),
            mode,
            out,
            hoard: Vec::new(),
        })
    }

    fn on_snapshot(&mut self, _snapshots: &[MapSnapshot]) -> Result<(), String> {
        match self.mode.as_str() {
            "trap" => panic!("mode trap: panicking on purpose"),
            "spin" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "grow" => loop {
                self.hoard.push(vec![1u8; 1 << 20]);
            },
            "refuse" => Err("mode refuse: refusing on purpose".into()),
            "flood-keys" => self
                .out
                .publish(&[], &flood(8_000, |i| (format!("k{i}"), "v".into()))),
            "flood-values" => self
                .out
                .publish(&[], &flood(100_000, |i| ("k".into(), format!("v{i}")))),
            "ignore-budget" => {
                let _ = self
                    .out
                    .publish(&[], &flood(100_000, |i| ("k".into(), format!("v{i}"))));
                Ok(())
            }
            "label-le" => self
                .out
                .publish(&[], &[Sample::new("clock", 1.0).label("le", "0.5")]),
            "log-flood" => {
                for _ in 0..1_000 {
                    log(LogLevel::Warn, &"fake line\n\x1b[2Jcleared\r".repeat(100));
                }
                self.out.publish(
                    &[Log2Histogram::default().to_histogram("latency", Vec::new())],
                    &[],
                )
            }
            "probe" => {
                let clock = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(-1.0);
                let network = match self.addr.parse::<std::net::SocketAddr>() {
                    Ok(a) => std::net::TcpStream::connect(a).is_ok(),
                    Err(_) => false,
                };
                self.out.publish(
                    &[Log2Histogram::default().to_histogram("latency", Vec::new())],
                    &[
                        Sample::new("clock", clock),
                        Sample::new("network", if network { 1.0 } else { 0.0 }),
                    ],
                )
            }
            _ => self.out.publish(
                &[Log2Histogram::default().to_histogram("latency", Vec::new())],
                &[],
            ),
        }
    }
}

fn flood(n: usize, label: impl Fn(usize) -> (String, String)) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            let (k, v) = label(i);
            Sample::new("clock", i as f64).label(&k, v)
        })
        .collect()
}

gadget_sdk::gadget!(Misbehaving);

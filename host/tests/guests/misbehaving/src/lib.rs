//! A guest for the host's tests: it misbehaves in the way the `mode` param says, on every
//! snapshot (`trap`, `spin`, `grow`, `refuse`), at init (`refuse-init`), or never (`ok`).
//! `probe` reports what the sandbox lets it see: the wall clock (seconds since the epoch) and
//! whether a TCP connection to the `addr` param succeeds (1) or not (0), as gauges.

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

gadget_sdk::gadget!(Misbehaving);

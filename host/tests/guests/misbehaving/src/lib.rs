//! A guest for the host's tests: it misbehaves in the way the `mode` param says, on every
//! snapshot (`trap`, `spin`, `grow`, `refuse`), at init (`refuse-init`), or never (`ok`).

use gadget_sdk::{Datasource, Gadget, GadgetConfig, Log2Histogram, MapSnapshot};

struct Misbehaving {
    mode: String,
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
        let out = Datasource::add(ds.histogram_spec("latency")?)?;
        Ok(Misbehaving {
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
            _ => self.out.publish(
                &[Log2Histogram::default().to_histogram("latency", Vec::new())],
                &[],
            ),
        }
    }
}

gadget_sdk::gadget!(Misbehaving);

//! What a guest may touch beyond its own memory: named in gadget.yaml, granted by the user.

/// Something a guest can only have when gadget.yaml asks for it and the user grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// The real wall and monotonic clocks (otherwise both are frozen at zero).
    Clock,
    /// TCP and UDP to any address, and name lookups (otherwise every socket call fails).
    Network,
}

impl Capability {
    pub const NAMES: &str = "clock or network";

    pub fn parse(s: &str) -> Option<Capability> {
        match s {
            "clock" => Some(Capability::Clock),
            "network" => Some(Capability::Network),
            _ => None,
        }
    }
}

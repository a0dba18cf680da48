//! A guest built against `gadget:api@1.0.0` (see wit/gadget.wit): the host must refuse it.

wit_bindgen::generate!({ path: "wit", world: "gadget" });

struct WrongMajor;

impl exports::gadget::api::guest::Guest for WrongMajor {
    fn init() -> Result<(), String> {
        Ok(())
    }
}

export!(WrongMajor);

//! What the guest's `init` receives: the datasources with gadget.yaml's annotations and the
//! user's on top, and the resolved params.

use crate::annotations;
use crate::metadata::GadgetMetadata;

/// A datasource as the guest sees it: gadget.yaml's annotations, then the user's on top.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasourceConfig {
    pub name: String,
    pub annotations: Vec<(String, String)>,
    /// Fields in gadget.yaml order, then fields only the user's annotations name.
    pub fields: Vec<(String, Vec<(String, String)>)>,
}

/// What the guest's `init` receives.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestConfig {
    pub gadget_name: String,
    pub datasources: Vec<DatasourceConfig>,
    pub params: Vec<(String, String)>,
}

impl GuestConfig {
    pub fn new(
        meta: &GadgetMetadata,
        user: &[annotations::Annotation],
        params: Vec<(String, String)>,
    ) -> Self {
        let datasources = meta
            .datasources
            .iter()
            .map(|(name, ds)| {
                let mut annotations: Vec<(String, String)> = ds
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let mut fields: Vec<(String, Vec<(String, String)>)> = ds
                    .fields
                    .0
                    .iter()
                    .map(|(f, m)| {
                        (
                            f.clone(),
                            m.annotations
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        )
                    })
                    .collect();
                for a in user.iter().filter(|a| &a.datasource == name) {
                    let kv = (a.key.clone(), a.value.clone());
                    match &a.field {
                        None => annotations.push(kv),
                        Some(f) => match fields.iter_mut().find(|(n, _)| n == f) {
                            Some((_, anns)) => anns.push(kv),
                            None => fields.push((f.clone(), vec![kv])),
                        },
                    }
                }
                DatasourceConfig {
                    name: name.clone(),
                    annotations,
                    fields,
                }
            })
            .collect();
        GuestConfig {
            gadget_name: meta.name.clone(),
            datasources,
            params,
        }
    }
}

//! CO-RE relocations of kind `BPF_CORE_TYPE_MATCHES` (12), resolved before aya sees the object.
//!
//! aya 0.14 knows relocation kinds 0–11 and refuses a whole object that has any other
//! ("invalid BTF relocation kind 12"), even in programs never loaded. `bpf_core_type_matches()`
//! emits kind 12, and IG's gadgets use it (profile_blockio picks its tracepoint prototype with
//! it). Two ways out: patch aya (a fork to maintain in the repository, against a crate whose
//! newer releases we cannot build with this rustc), or resolve these relocations here. We do
//! the latter: a type-matches relocation never depends on anything aya computes (no field
//! offsets, no map relocations), its result is a constant 1 or 0 written into one instruction,
//! so it can be done on the bytes of the object. For each kind-12 record of `.BTF.ext` we
//! compute libbpf's answer (`bpf_core_types_match` in libbpf's relo_core.c) against the
//! running kernel's BTF, write it into the instruction's immediate exactly as libbpf does, and
//! remove the record from `.BTF.ext` so aya sees only kinds it knows. Kinds above 12 are
//! refused with an error naming the object, the section and the instruction.
//!
//! Field offsets into flexible arrays past their declared length, which aya refuses, are
//! resolved here the same way (module [`super::core_flex`]).
//!
//! Only vmlinux BTF is searched for candidates (libbpf also searches kernel modules' BTF);
//! the gadgets this host runs hook the core kernel.

use std::borrow::Cow;

use object::{Object, ObjectSection};

use super::btf::{Btf, BtfError, Kind};
use super::core_flex;

/// `BPF_CORE_TYPE_MATCHES` in libbpf's `enum bpf_core_relo_kind`.
pub const TYPE_MATCHES: u32 = 12;
/// The highest kind aya 0.14 relocates itself (`BPF_CORE_ENUMVAL_VALUE`).
const AYA_MAX_KIND: u32 = 11;
const RECORD_LEN: usize = 16;
const INSN_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("eBPF object {object}: {detail}")]
    Malformed { object: String, detail: String },
    #[error(
        "eBPF object {object}: CO-RE relocation kind {kind} (section {section}, instruction {insn}) is not supported by this host (it handles kinds 0-12)"
    )]
    UnknownKind {
        object: String,
        kind: u32,
        section: String,
        insn: usize,
    },
    #[error("eBPF object {object}: {source}")]
    Btf { object: String, source: BtfError },
    #[error("kernel BTF: {0}")]
    Kernel(BtfError),
    #[error("eBPF object {object}: CO-RE field relocation {detail}")]
    Field { object: String, detail: String },
    #[error(
        "eBPF object {object}: CO-RE type-matches relocation at instruction {insn} of section {section} patches an instruction that is not a move or 64-bit load of an immediate"
    )]
    BadInstruction {
        object: String,
        section: String,
        insn: usize,
    },
}

/// One resolved relocation, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub section: String,
    /// Instruction index in the section.
    pub insn: usize,
    /// The local type's name, e.g. `btf_trace_block_rq_insert___new`.
    pub type_name: String,
    /// The relocation kind: [`TYPE_MATCHES`] or [`core_flex::FIELD_BYTE_OFFSET`].
    pub kind: u32,
    /// For type matches: the result. Field offsets resolved here always found their field.
    pub matches: bool,
}

/// Resolves every kind-12 relocation of `object` against `kernel` (loaded lazily, only when the
/// object has such a relocation). Returns the object unchanged when there is nothing to do.
pub fn resolve_type_matches<'a>(
    object: &'a [u8],
    name: &str,
    kernel: impl FnOnce() -> Result<Btf, BtfError>,
) -> Result<(Cow<'a, [u8]>, Vec<Resolved>), CoreError> {
    let bad = |detail: String| CoreError::Malformed {
        object: name.to_string(),
        detail,
    };
    let file = object::File::parse(object).map_err(|e| bad(format!("not a valid ELF: {e}")))?;
    let range = |sec: &str| {
        file.section_by_name(sec)
            .and_then(|s| s.file_range())
            .map(|(o, l)| (o as usize, l as usize))
    };
    let (Some((ext_off, ext_len)), Some((btf_off, btf_len))) = (range(".BTF.ext"), range(".BTF"))
    else {
        return Ok((Cow::Borrowed(object), Vec::new()));
    };
    let slice = |o: usize, l: usize, what: &str| {
        object
            .get(o..o.saturating_add(l))
            .ok_or_else(|| bad(format!("{what} section out of the file")))
    };
    let ext = slice(ext_off, ext_len, ".BTF.ext")?;
    let relos = CoreRelos::parse(ext).map_err(|d| bad(format!(".BTF.ext: {d}")))?;
    let Some(relos) = relos else {
        return Ok((Cow::Borrowed(object), Vec::new()));
    };
    let local =
        Btf::parse(slice(btf_off, btf_len, ".BTF")?, ".BTF").map_err(|source| CoreError::Btf {
            object: name.to_string(),
            source,
        })?;
    // The (offset, length) of the section a relocation names, once its instruction is known to
    // lie inside it.
    let section_of = |sec_name: &str, insn_off: usize| {
        let (text_off, text_len) = range(sec_name).ok_or_else(|| {
            bad(format!(
                "CO-RE relocation names section {sec_name}, which the ELF does not have"
            ))
        })?;
        if insn_off + INSN_LEN > text_len {
            return Err(bad(format!(
                "CO-RE relocation at byte {insn_off} is past the end of section {sec_name}"
            )));
        }
        Ok((text_off, text_len))
    };
    let mut kernel_btf = None;
    let mut kernel = Some(kernel);
    let mut out = object.to_vec();
    let mut kept: Vec<(u32, Vec<[u8; RECORD_LEN]>)> = Vec::new();
    let mut resolved = Vec::new();
    for sec in &relos.sections {
        let sec_name = local.str_at(sec.name_off).to_string();
        let mut keep = Vec::new();
        for rec in &sec.records {
            let insn_off = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) as usize;
            let type_id = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
            let kind = u32::from_le_bytes([rec[12], rec[13], rec[14], rec[15]]);
            let insn = insn_off / INSN_LEN;
            let access_off = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]);
            if kind == core_flex::FIELD_BYTE_OFFSET
                && local.exists(type_id)
                && let Some(spec) = core_flex::flex_spec(&local, type_id, local.str_at(access_off))
            {
                if kernel_btf.is_none()
                    && let Some(load) = kernel.take()
                {
                    kernel_btf = Some(load().map_err(CoreError::Kernel)?);
                }
                let Some(target) = kernel_btf.as_ref() else {
                    continue;
                };
                let type_name = local.name(type_id).to_string();
                let field_err = |detail: String| CoreError::Field {
                    object: name.to_string(),
                    detail: format!(
                        "{type_name} {} (section {sec_name}, instruction {insn}): {detail}",
                        local.str_at(access_off)
                    ),
                };
                let new = core_flex::target_offset(&local, type_id, &spec, target)
                    .ok_or_else(|| field_err("the running kernel has no such field".to_string()))?;
                let (text_off, _) = section_of(&sec_name, insn_off)?;
                let at = text_off + insn_off;
                core_flex::patch_offset(&mut out[at..at + INSN_LEN], spec.offset, new)
                    .map_err(field_err)?;
                resolved.push(Resolved {
                    section: sec_name.clone(),
                    insn,
                    type_name,
                    kind,
                    matches: true,
                });
                continue;
            }
            if kind <= AYA_MAX_KIND {
                keep.push(*rec);
                continue;
            }
            if kind != TYPE_MATCHES {
                return Err(CoreError::UnknownKind {
                    object: name.to_string(),
                    kind,
                    section: sec_name,
                    insn,
                });
            }
            if !local.exists(type_id) || type_id == 0 {
                return Err(bad(format!(
                    "CO-RE relocation in {sec_name} at instruction {insn} names type [{type_id}], which .BTF does not have"
                )));
            }
            if kernel_btf.is_none()
                && let Some(load) = kernel.take()
            {
                kernel_btf = Some(load().map_err(CoreError::Kernel)?);
            }
            let Some(target) = kernel_btf.as_ref() else {
                continue;
            };
            let matches = type_matches_any(&local, type_id, target);
            let (text_off, text_len) = section_of(&sec_name, insn_off)?;
            patch_insn(&mut out, text_off + insn_off, text_off + text_len, matches).map_err(
                |()| CoreError::BadInstruction {
                    object: name.to_string(),
                    section: sec_name.clone(),
                    insn,
                },
            )?;
            resolved.push(Resolved {
                section: sec_name.clone(),
                insn,
                type_name: local.name(type_id).to_string(),
                kind,
                matches,
            });
        }
        if !keep.is_empty() {
            kept.push((sec.name_off, keep));
        }
    }
    if resolved.is_empty() {
        return Ok((Cow::Borrowed(object), resolved));
    }
    // Rewrite the relocation subsection in place with only the records aya handles; the
    // declared length shrinks, the bytes after it are zeroed (aya reads only what is declared).
    let mut sub = Vec::with_capacity(relos.len);
    if !kept.is_empty() {
        sub.extend_from_slice(&(RECORD_LEN as u32).to_le_bytes());
        for (name_off, records) in &kept {
            sub.extend_from_slice(&name_off.to_le_bytes());
            sub.extend_from_slice(&(records.len() as u32).to_le_bytes());
            for r in records {
                sub.extend_from_slice(r);
            }
        }
    }
    let start = ext_off + relos.start;
    out[start..start + relos.len].fill(0);
    out[start..start + sub.len()].copy_from_slice(&sub);
    let len_field = ext_off + CORE_RELO_LEN_FIELD;
    out[len_field..len_field + 4].copy_from_slice(&(sub.len() as u32).to_le_bytes());
    Ok((Cow::Owned(out), resolved))
}

/// Offset of `core_relo_len` in `struct btf_ext_header`.
const CORE_RELO_LEN_FIELD: usize = 28;

struct CoreSection {
    name_off: u32,
    records: Vec<[u8; RECORD_LEN]>,
}

/// Why the CO-RE relocation subsection of `.BTF.ext` cannot be read.
#[derive(Debug, thiserror::Error)]
enum ExtError {
    #[error("truncated")]
    Truncated,
    #[error("bad header")]
    BadHeader,
    #[error("CO-RE relocations out of bounds")]
    OutOfBounds,
    #[error("CO-RE record size {0} below {RECORD_LEN}")]
    RecordSize(usize),
    #[error("CO-RE section header truncated")]
    SectionHeaderTruncated,
    #[error("CO-RE records truncated")]
    RecordsTruncated,
}

/// The CO-RE relocation subsection of `.BTF.ext`.
struct CoreRelos {
    /// Offset of the subsection in `.BTF.ext` and its declared length.
    start: usize,
    len: usize,
    sections: Vec<CoreSection>,
}

impl CoreRelos {
    /// `None` when the object has no CO-RE relocations.
    fn parse(ext: &[u8]) -> Result<Option<CoreRelos>, ExtError> {
        let word = |o: usize| {
            ext.get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or(ExtError::Truncated)
        };
        if ext.len() < 8 || u16::from_le_bytes([ext[0], ext[1]]) != 0xeb9f {
            return Err(ExtError::BadHeader);
        }
        let hdr_len = word(4)?;
        if hdr_len < CORE_RELO_LEN_FIELD + 4 {
            return Ok(None);
        }
        let (off, len) = (word(24)?, word(CORE_RELO_LEN_FIELD)?);
        if len == 0 {
            return Ok(None);
        }
        let start = hdr_len
            .checked_add(off)
            .filter(|s| s.checked_add(len).is_some_and(|e| e <= ext.len()))
            .ok_or(ExtError::OutOfBounds)?;
        let data = &ext[start..start + len];
        let rec_size = word(start)?;
        if rec_size < RECORD_LEN {
            return Err(ExtError::RecordSize(rec_size));
        }
        let mut sections = Vec::new();
        let mut o = 4;
        while o < data.len() {
            let rd = |o: usize| {
                data.get(o..o + 4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or(ExtError::SectionHeaderTruncated)
            };
            let name_off = rd(o)?;
            let n = rd(o + 4)? as usize;
            o += 8;
            let end = n
                .checked_mul(rec_size)
                .and_then(|b| b.checked_add(o))
                .filter(|&e| e <= data.len())
                .ok_or(ExtError::RecordsTruncated)?;
            let records = (0..n)
                .map(|i| {
                    let r = &data[o + i * rec_size..o + i * rec_size + RECORD_LEN];
                    let mut a = [0u8; RECORD_LEN];
                    a.copy_from_slice(r);
                    a
                })
                .collect();
            sections.push(CoreSection { name_off, records });
            o = end;
        }
        Ok(Some(CoreRelos {
            start,
            len,
            sections,
        }))
    }
}

/// Writes 1 or 0 into the instruction as libbpf's `bpf_core_patch_insn` does for a type-based
/// relocation: the immediate of an ALU move, or both halves of a 64-bit immediate load.
fn patch_insn(out: &mut [u8], at: usize, end: usize, value: bool) -> Result<(), ()> {
    const BPF_LD: u8 = 0x00;
    const BPF_ALU: u8 = 0x04;
    const BPF_ALU64: u8 = 0x07;
    const LD_IMM64: u8 = 0x18;
    let code = out[at];
    let imm = u32::from(value).to_le_bytes();
    match code & 0x07 {
        BPF_ALU | BPF_ALU64 if code & 0x08 == 0 => {
            // BPF_K source: the immediate is the operand.
            out[at + 4..at + 8].copy_from_slice(&imm);
            Ok(())
        }
        BPF_LD if code == LD_IMM64 && at + 2 * INSN_LEN <= end => {
            out[at + 4..at + 8].copy_from_slice(&imm);
            out[at + 12..at + 16].fill(0);
            Ok(())
        }
        _ => Err(()),
    }
}

/// libbpf's candidate search and match for a type-based relocation: the kernel types of the
/// same kind (any enum for enums) whose names equal the local name without its `___flavor`
/// suffix; the relocation is 1 when one of them matches.
fn type_matches_any(local: &Btf, local_id: u32, target: &Btf) -> bool {
    let lk = local.kind(local_id);
    let lname = essential_name(local.name(local_id));
    if lname.is_empty() {
        return false;
    }
    (1..target.len()).any(|id| {
        let tk = target.kind(id);
        let compat = tk == lk || (is_enum(tk) && is_enum(lk));
        compat
            && essential_name(target.name(id)) == lname
            && types_match(
                local,
                local_id,
                target,
                id,
                false,
                super::btf::MAX_DEPTH as i32,
            ) == Some(true)
    })
}

fn is_enum(k: Kind) -> bool {
    matches!(k, Kind::Enum | Kind::Enum64)
}

/// A name without its CO-RE flavor: `X___Y` → `X` (libbpf's `bpf_core_essential_name_len`:
/// the last `___` with a non-underscore on both sides).
pub fn essential_name(name: &str) -> &str {
    let b = name.as_bytes();
    if b.len() >= 5 {
        for i in (0..=b.len() - 5).rev() {
            if b[i] != b'_' && &b[i + 1..i + 4] == b"___" && b[i + 4] != b'_' {
                return &name[..=i];
            }
        }
    }
    name
}

fn names_match(local: &Btf, l_off: u32, target: &Btf, t_off: u32) -> bool {
    let (l, t) = (local.str_at(l_off), target.str_at(t_off));
    if t.is_empty() {
        return l.is_empty();
    }
    essential_name(l) == essential_name(t)
}

/// libbpf's `__bpf_core_types_match`: `Some(true/false)`, or `None` for an error (too deep,
/// missing type), which libbpf propagates as a failure and which counts as "no match" here.
fn types_match(
    local: &Btf,
    mut l: u32,
    target: &Btf,
    mut t: u32,
    mut behind_ptr: bool,
    level: i32,
) -> Option<bool> {
    if level <= 0 {
        return None;
    }
    for _ in 0..super::btf::MAX_DEPTH {
        l = local.skip_mods_and_typedefs(l);
        t = target.skip_mods_and_typedefs(t);
        if !local.exists(l) || !target.exists(t) {
            return None;
        }
        if !names_match(local, local.name_off(l), target, target.name_off(t)) {
            return Some(false);
        }
        let (lk, tk) = (local.kind(l), target.kind(t));
        match lk {
            Kind::Void => return Some(lk == tk),
            Kind::Fwd => {
                let lf = local.kflag(l);
                return Some(if behind_ptr {
                    if lk == tk {
                        lf == target.kflag(t)
                    } else {
                        (tk == Kind::Struct && !lf) || (tk == Kind::Union && lf)
                    }
                } else {
                    lk == tk && lf == target.kflag(t)
                });
            }
            Kind::Enum | Kind::Enum64 => {
                if !is_enum(tk) || local.size(l) != target.size(t) {
                    return Some(false);
                }
                let (lm, tm) = (local.members(l), target.members(t));
                if lm.len() > tm.len() {
                    return Some(false);
                }
                return Some(lm.iter().all(|a| {
                    tm.iter()
                        .any(|b| names_match(local, a.name_off, target, b.name_off))
                }));
            }
            Kind::Struct | Kind::Union => {
                if behind_ptr {
                    if lk == tk {
                        return Some(true);
                    }
                    if tk != Kind::Fwd {
                        return Some(false);
                    }
                    return Some((lk == Kind::Union) == target.kflag(t));
                }
                if lk != tk {
                    return Some(false);
                }
                let (lm, tm) = (local.members(l), target.members(t));
                if lm.len() > tm.len() {
                    return Some(false);
                }
                for a in &lm {
                    let mut matched = false;
                    for b in &tm {
                        if !names_match(local, a.name_off, target, b.name_off) {
                            continue;
                        }
                        if types_match(local, a.type_id, target, b.type_id, behind_ptr, level - 1)?
                        {
                            matched = true;
                            break;
                        }
                    }
                    if !matched {
                        return Some(false);
                    }
                }
                return Some(true);
            }
            Kind::Int => {
                if lk != tk {
                    return Some(false);
                }
                let (ls, _) = local.int_encoding(l);
                let (ts, _) = target.int_encoding(t);
                return Some(local.size(l) == target.size(t) && ls == ts);
            }
            Kind::Ptr => {
                if lk != tk {
                    return Some(false);
                }
                behind_ptr = true;
                l = local.type_ref(l);
                t = target.type_ref(t);
            }
            Kind::Array => {
                if lk != tk {
                    return Some(false);
                }
                let ((le, ln), (te, tn)) = (local.array(l), target.array(t));
                if ln != tn {
                    return Some(false);
                }
                l = le;
                t = te;
            }
            Kind::FuncProto => {
                if lk != tk {
                    return Some(false);
                }
                let (lp, tp) = (local.members(l), target.members(t));
                if lp.len() != tp.len() {
                    return Some(false);
                }
                for (a, b) in lp.iter().zip(&tp) {
                    if !types_match(local, a.type_id, target, b.type_id, behind_ptr, level - 1)? {
                        return Some(false);
                    }
                }
                l = local.type_ref(l);
                t = target.type_ref(t);
            }
            _ => return Some(false),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essential_names_drop_the_flavor() {
        assert_eq!(essential_name("request___empty"), "request");
        assert_eq!(
            essential_name("btf_trace_block_rq_insert___new"),
            "btf_trace_block_rq_insert"
        );
        assert_eq!(essential_name("task_struct"), "task_struct");
        assert_eq!(essential_name("a____b"), "a____b");
        assert_eq!(essential_name("___x"), "___x");
    }

    #[test]
    fn patches_moves_and_wide_loads_only() {
        // r1 = 7 (BPF_ALU64 | BPF_MOV | BPF_K)
        let mut mov = vec![0xb7, 0x01, 0, 0, 7, 0, 0, 0];
        patch_insn(&mut mov, 0, 8, true).unwrap();
        assert_eq!(&mov[4..8], &1u32.to_le_bytes());
        let mut ld = vec![0x18, 0x01, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 5, 5, 5, 5];
        patch_insn(&mut ld, 0, 16, false).unwrap();
        assert_eq!(&ld[4..8], &[0; 4]);
        assert_eq!(&ld[12..16], &[0; 4]);
        // r1 = *(u64 *)(r2 + 0): a load from memory is refused.
        let mut ldx = vec![0x79, 0x21, 0, 0, 0, 0, 0, 0];
        assert!(patch_insn(&mut ldx, 0, 8, true).is_err());
    }
}

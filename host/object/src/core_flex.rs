//! CO-RE field-offset relocations (`BPF_CORE_FIELD_BYTE_OFFSET`, kind 0) that index past the
//! declared length of a flexible array member, resolved before aya sees the object.
//!
//! libbpf accepts `ctx->args[1]` on `struct syscall_trace_enter { …; unsigned long args[]; }`:
//! an index into an array that is the last member of its struct and has 0 elements is in
//! bounds (`is_flex_arr` in libbpf's relo_core.c). aya 0.14 does not, and one such relocation
//! fails the whole object ("invalid access string `0:2:1` … array index out of bounds"); every
//! IG tracer on `syscalls` tracepoints has them (trace_open reads `args[1]` and `args[2]`).
//! A field byte offset is one number written into one instruction, computed from BTF alone, so
//! it is done here on the object's bytes, the way [`super::core_relo`] does type matches: walk
//! the access string on the local type, find the kernel type of the same essential name whose
//! members of the same names lead to a compatible field (libbpf's `bpf_core_spec_match`, named
//! members searched through anonymous ones), and patch the instruction's offset or immediate
//! with the kernel's byte offset after checking it holds the local one.
//!
//! Only relocations that need the flexible-array rule are taken; every other one stays for aya.

use super::btf::{Btf, Kind, MAX_DEPTH};
use super::core_relo::essential_name;

/// `BPF_CORE_FIELD_BYTE_OFFSET`.
pub const FIELD_BYTE_OFFSET: u32 = 0;
/// Longest access string followed (libbpf's `BPF_CORE_SPEC_MAX_LEN` is 64).
const MAX_ACCESS_LEN: usize = 64;

/// One step of a parsed access string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A named struct or union member.
    Member(String),
    /// An index into an array (`flex`: the array is a flexible member, any index is allowed).
    Index { idx: u32, flex: bool },
}

/// The local side of a relocation: its steps and byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSpec {
    steps: Vec<Step>,
    pub offset: u32,
    /// Kind of the accessed field (after typedefs), for the compatibility check.
    field_kind: Kind,
}

/// Parses `access` ("0:2:1") on local type `root`. `None` when aya can relocate it itself (no
/// index past a flexible array's declared length) or when it is not a plain field access
/// (bitfields, a root index other than 0): those are left to aya as before.
pub fn flex_spec(btf: &Btf, root: u32, access: &str) -> Option<LocalSpec> {
    let idx: Vec<u32> = access
        .split(':')
        .map(|s| s.parse::<u32>().ok())
        .collect::<Option<Vec<_>>>()?;
    if idx.len() < 2 || idx.len() > MAX_ACCESS_LEN || idx[0] != 0 {
        return None;
    }
    let mut t = btf.skip_mods_and_typedefs(root);
    let mut bits: u64 = 0;
    let mut steps = Vec::new();
    let mut needs_flex = false;
    // The struct and member index the previous step went through (for the flex check).
    let mut last_member: Option<(u32, usize)> = None;
    for &i in &idx[1..] {
        match btf.kind(t) {
            Kind::Struct | Kind::Union => {
                let members = btf.members(t);
                let m = members.get(i as usize)?;
                if btf.kflag(t) && (m.offset >> 24) != 0 {
                    return None; // bitfield
                }
                let off = if btf.kflag(t) {
                    m.offset & 0xff_ffff
                } else {
                    m.offset
                };
                bits += u64::from(off);
                let name = btf.str_at(m.name_off);
                if !name.is_empty() {
                    steps.push(Step::Member(name.to_string()));
                }
                last_member = Some((t, i as usize));
                t = btf.skip_mods_and_typedefs(m.type_id);
            }
            Kind::Array => {
                let (elem, n) = btf.array(t);
                let flex =
                    n == 0 && last_member.is_some_and(|(s, mi)| btf.members(s).len() == mi + 1);
                if i >= n {
                    if !flex {
                        return None;
                    }
                    needs_flex = true;
                }
                let size = btf.type_size(elem)?;
                bits = bits.checked_add(u64::from(i).checked_mul(size)?.checked_mul(8)?)?;
                steps.push(Step::Index { idx: i, flex });
                last_member = None;
                t = btf.skip_mods_and_typedefs(elem);
            }
            _ => return None,
        }
    }
    if !needs_flex || !bits.is_multiple_of(8) {
        return None;
    }
    Some(LocalSpec {
        steps,
        offset: u32::try_from(bits / 8).ok()?,
        field_kind: btf.kind(t),
    })
}

/// The byte offset of the same field in the first kernel type (same kind, same essential name)
/// where every step matches; `None` when no candidate does.
pub fn target_offset(local: &Btf, root: u32, spec: &LocalSpec, target: &Btf) -> Option<u32> {
    let lroot = local.skip_mods_and_typedefs(root);
    let (kind, name) = (local.kind(lroot), essential_name(local.name(lroot)));
    if name.is_empty() {
        return None;
    }
    (1..target.len())
        .filter(|&id| target.kind(id) == kind && essential_name(target.name(id)) == name)
        .find_map(|id| match_spec(target, id, spec))
}

fn match_spec(target: &Btf, root: u32, spec: &LocalSpec) -> Option<u32> {
    let mut t = target.skip_mods_and_typedefs(root);
    let mut bits: u64 = 0;
    let mut last_member: Option<(u32, usize)> = None;
    for step in &spec.steps {
        match step {
            Step::Member(name) => {
                let (off, ty, parent, index) = find_member(target, t, name, 0)?;
                bits += off;
                last_member = Some((parent, index));
                t = target.skip_mods_and_typedefs(ty);
            }
            Step::Index { idx, flex } => {
                if target.kind(t) != Kind::Array {
                    return None;
                }
                let (elem, n) = target.array(t);
                let t_flex =
                    n == 0 && last_member.is_some_and(|(s, mi)| target.members(s).len() == mi + 1);
                if *idx >= n && !(*flex && t_flex) {
                    return None;
                }
                let size = target.type_size(elem)?;
                bits = bits.checked_add(u64::from(*idx).checked_mul(size)?.checked_mul(8)?)?;
                last_member = None;
                t = target.skip_mods_and_typedefs(elem);
            }
        }
    }
    let compatible = match (spec.field_kind, target.kind(t)) {
        (a, b) if a == b => true,
        (Kind::Int | Kind::Enum | Kind::Enum64, Kind::Int | Kind::Enum | Kind::Enum64) => true,
        _ => false,
    };
    (compatible && bits.is_multiple_of(8))
        .then(|| u32::try_from(bits / 8).ok())
        .flatten()
}

/// A member named `name` of struct/union `t`, searched through anonymous members as libbpf
/// does: (bit offset from `t`, member type, the struct holding it, its index there).
fn find_member(btf: &Btf, t: u32, name: &str, depth: usize) -> Option<(u64, u32, u32, usize)> {
    if depth >= MAX_DEPTH || !matches!(btf.kind(t), Kind::Struct | Kind::Union) {
        return None;
    }
    for (i, m) in btf.members(t).iter().enumerate() {
        if btf.kflag(t) && (m.offset >> 24) != 0 {
            continue;
        }
        let off = u64::from(if btf.kflag(t) {
            m.offset & 0xff_ffff
        } else {
            m.offset
        });
        let mname = btf.str_at(m.name_off);
        if mname == name {
            return Some((off, m.type_id, t, i));
        }
        if mname.is_empty() {
            let inner = btf.skip_mods_and_typedefs(m.type_id);
            if let Some((o, ty, p, idx)) = find_member(btf, inner, name, depth + 1) {
                return Some((off + o, ty, p, idx));
            }
        }
    }
    None
}

/// Writes `new` where the instruction holds `old`: the offset of a load or store, or the
/// immediate of an ALU instruction (libbpf's `bpf_core_patch_insn` for field offsets).
pub fn patch_offset(insn: &mut [u8], old: u32, new: u32) -> Result<(), String> {
    const BPF_LDX: u8 = 0x01;
    const BPF_ST: u8 = 0x02;
    const BPF_STX: u8 = 0x03;
    const BPF_ALU: u8 = 0x04;
    const BPF_ALU64: u8 = 0x07;
    if insn.len() < 8 {
        return Err("instruction truncated".into());
    }
    match insn[0] & 0x07 {
        BPF_LDX | BPF_ST | BPF_STX => {
            let cur = i16::from_le_bytes([insn[2], insn[3]]);
            if i64::from(cur) != i64::from(old) {
                return Err(format!(
                    "the instruction's offset is {cur}, not the local field offset {old}"
                ));
            }
            let new = i16::try_from(new)
                .map_err(|_| format!("the kernel's field offset {new} does not fit a load"))?;
            insn[2..4].copy_from_slice(&new.to_le_bytes());
            Ok(())
        }
        BPF_ALU | BPF_ALU64 if insn[0] & 0x08 == 0 => {
            let cur = u32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            if cur != old {
                return Err(format!(
                    "the instruction's immediate is {cur}, not the local field offset {old}"
                ));
            }
            insn[4..8].copy_from_slice(&new.to_le_bytes());
            Ok(())
        }
        _ => Err("not a load, store or ALU instruction with an immediate".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IG's trace_open object (fixtures/ig-v0.46.0), as checked into the fuzz corpus.
    const IG_TRACE_OPEN: &[u8] =
        include_bytes!("../../../fuzz/corpus/ebpf_object/ig-trace_open.bpf.o");

    fn btf_of(object: &[u8]) -> Btf {
        use object::{Object, ObjectSection};
        let file = object::File::parse(object).unwrap();
        Btf::parse(
            file.section_by_name(".BTF").unwrap().data().unwrap(),
            ".BTF",
        )
        .unwrap()
    }

    #[test]
    fn flexible_array_indexes_are_taken_others_left_to_aya() {
        let btf = btf_of(IG_TRACE_OPEN);
        let root = btf
            .find_by_name("syscall_trace_enter", Kind::Struct)
            .next()
            .unwrap();
        // args[1] and args[2]: past the declared 0 elements of the last member.
        let spec = flex_spec(&btf, root, "0:2:1").unwrap();
        assert_eq!(spec.offset, 16 + 8);
        assert_eq!(flex_spec(&btf, root, "0:2:2").unwrap().offset, 16 + 16);
        // `nr` (a plain member) and a non-zero root index are aya's.
        assert_eq!(flex_spec(&btf, root, "0:1"), None);
        assert_eq!(flex_spec(&btf, root, "1:2:1"), None);
        assert_eq!(flex_spec(&btf, root, "0:9"), None);
        assert_eq!(flex_spec(&btf, root, "x"), None);
        // Matched against the object's own BTF (as the kernel's would be): same offset.
        assert_eq!(target_offset(&btf, root, &spec, &btf), Some(24));
    }

    #[test]
    fn patches_loads_and_alu_immediates_only_when_they_hold_the_local_offset() {
        // r1 = *(u64 *)(r6 + 24)
        let mut ldx = [0x79, 0x61, 24, 0, 0, 0, 0, 0];
        patch_offset(&mut ldx, 24, 32).unwrap();
        assert_eq!(ldx[2..4], 32i16.to_le_bytes());
        assert!(patch_offset(&mut ldx, 24, 40).is_err());
        // r1 += 24
        let mut add = [0x07, 0x01, 0, 0, 24, 0, 0, 0];
        patch_offset(&mut add, 24, 8).unwrap();
        assert_eq!(add[4..8], 8u32.to_le_bytes());
        // A call is not a field access.
        assert!(patch_offset(&mut [0x85, 0, 0, 0, 1, 0, 0, 0], 0, 1).is_err());
    }
}

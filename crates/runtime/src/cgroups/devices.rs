//! Device rules: checked once, then written as v1 `devices.allow` lines or
//! compiled to a `BPF_PROG_TYPE_CGROUP_DEVICE` program for cgroup2.
//!
//! v1 applies rules in order, each changing the verdict for the devices it
//! covers; the program reproduces that by testing the rules last to first
//! and returning the verdict of the first that matches, deny by default.
//! An allow rule matches when it grants every access asked for, a deny
//! rule when it refuses any of them.

use berth_sys::bpf::Insn;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::Error;

/// Access bits as the kernel passes them to device programs.
const ACC_MKNOD: u8 = 1;
const ACC_READ: u8 = 2;
const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;
/// `BPF_DEVCG_DEV_BLOCK` and `BPF_DEVCG_DEV_CHAR`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    All,
    Block,
    Char,
}

/// A checked device rule; `None` numbers are wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    pub fn v1_string(&self) -> String {
        let kind = match self.kind {
            Kind::All => 'a',
            Kind::Block => 'b',
            Kind::Char => 'c',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!("{kind} {}:{} {access}", num(self.major), num(self.minor))
    }

    /// Matches every device and access, whatever its verdict.
    fn is_total(&self) -> bool {
        self.kind == Kind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }
}

/// Checks OCI rules. FIFO rules are dropped: the device cgroup does not
/// govern FIFOs.
pub(super) fn normalize(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, Error> {
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => Kind::All,
            LinuxDeviceType::B => Kind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
            LinuxDeviceType::P => {
                tracing::debug!("device rule for a fifo ignored: fifos are not device-controlled");
                continue;
            }
        };
        let num = |n: Option<i64>, what: &str| -> Result<Option<u32>, Error> {
            match n {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                Some(n) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| Error::invalid(format!("device {what}"), n.to_string())),
            }
        };
        let access_str = r.access().as_deref().unwrap_or("");
        let mut access = 0;
        for c in access_str.chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => {
                    return Err(Error::invalid(
                        "device access",
                        format!("{access_str:?} (use r, w and m)"),
                    ))
                }
            };
        }
        if access == 0 {
            access = ACC_ALL;
        }
        out.push(Rule {
            allow: r.allow(),
            kind,
            major: num(r.major(), "major")?,
            minor: num(r.minor(), "minor")?,
            access,
        });
    }
    Ok(out)
}

// eBPF opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

/// Registers: r1 is the context (`struct bpf_cgroup_dev_ctx`), then
/// scratch once read; r2 type, r3 access, r4 major, r5 minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// The device program for `rules` (see the module comment).
pub(super) fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut prog = vec![
        // access_type holds the device type in its low 16 bits, the access
        // in the high ones.
        Insn::new(LDX_MEM_W, R2, R1, 0, 0),
        Insn::new(ALU64_AND_K, R2, 0, 0, 0xffff),
        Insn::new(LDX_MEM_W, R3, R1, 0, 0),
        Insn::new(ALU64_RSH_K, R3, 0, 0, 16),
        Insn::new(LDX_MEM_W, R4, R1, 4, 0),
        Insn::new(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // Each test jumps past the rest of the block when it fails; the
        // offsets are filled in once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps = Vec::new();
        match rule.kind {
            Kind::All => {}
            Kind::Block | Kind::Char => {
                let t = if rule.kind == Kind::Block {
                    DEV_BLOCK
                } else {
                    DEV_CHAR
                };
                jumps.push(block.len());
                block.push(Insn::new(JMP_JNE_K, R2, 0, 0, t));
            }
        }
        if rule.access != ACC_ALL {
            block.push(Insn::new(ALU64_MOV_X, R1, R3, 0, 0));
            jumps.push(block.len() + 1);
            if rule.allow {
                // Skip unless every requested bit is granted.
                block.push(Insn::new(
                    ALU64_AND_K,
                    R1,
                    0,
                    0,
                    i32::from(!rule.access & ACC_ALL),
                ));
                block.push(Insn::new(JMP_JNE_K, R1, 0, 0, 0));
            } else {
                // Skip unless some requested bit is refused.
                block.push(Insn::new(ALU64_AND_K, R1, 0, 0, i32::from(rule.access)));
                block.push(Insn::new(JMP_JEQ_K, R1, 0, 0, 0));
            }
        }
        for (reg, n) in [(R4, rule.major), (R5, rule.minor)] {
            if let Some(n) = n {
                jumps.push(block.len());
                // Device numbers fit in 20 bits; the cast cannot wrap.
                block.push(Insn::new(JMP_JNE_K, reg, 0, 0, n as i32));
            }
        }
        block.push(Insn::new(ALU64_MOV_K, R0, 0, 0, i32::from(rule.allow)));
        block.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for j in jumps {
            // A jump lands `off` instructions after the next one.
            block[j].off = (len - j - 1) as i16;
        }
        prog.extend(block);
        if rule.is_total() {
            // Nothing after an unconditional verdict is reachable, and the
            // verifier rejects unreachable code.
            return prog;
        }
    }
    prog.push(Insn::new(ALU64_MOV_K, R0, 0, 0, 0));
    prog.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    prog
}

//! The little of the DNS wire format (RFC 1035) the server needs: read
//! one question, write answers to it. Forwarded queries are relayed as
//! bytes and never parsed. Everything here takes untrusted input from
//! containers: it checks every length and never panics on a bad packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const CLASS_IN: u16 = 1;

pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const NOTIMP: u8 = 4;
pub const REFUSED: u8 = 5;

/// docker's embedded server answers with this TTL too.
const TTL: u32 = 600;
const HEADER: usize = 12;
/// The largest reply a plain (non-EDNS) UDP client accepts.
pub const UDP_MAX: usize = 512;

/// One parsed query: its single question, with the name lowercased and
/// without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The client asked for recursion (copied into the reply).
    pub rd: bool,
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question as sent (case kept, for clients that check it).
    question: Vec<u8>,
}

/// A record in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ptr(String),
}

/// The id of a message, if it has a header at all.
pub fn id_of(msg: &[u8]) -> Option<u16> {
    (msg.len() >= HEADER).then(|| u16::from_be_bytes([msg[0], msg[1]]))
}

/// Parses a query; on failure the rcode a reply should carry.
pub fn parse_query(msg: &[u8]) -> Result<Query, u8> {
    if msg.len() < HEADER {
        return Err(FORMERR);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    if qr {
        return Err(FORMERR);
    }
    if opcode != 0 {
        return Err(NOTIMP);
    }
    if qdcount != 1 {
        return Err(FORMERR);
    }
    let mut pos = HEADER;
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(FORMERR)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (0xC0) and the reserved label types have
        // no business in a question.
        if len > 63 {
            return Err(FORMERR);
        }
        let label = msg.get(pos..pos + len).ok_or(FORMERR)?;
        total += len + 1;
        if total > 255 {
            return Err(FORMERR);
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let tail = msg.get(pos..pos + 4).ok_or(FORMERR)?;
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    let qclass = u16::from_be_bytes([tail[2], tail[3]]);
    Ok(Query {
        id,
        rd: flags & 0x0100 != 0,
        name: labels.join("."),
        qtype,
        qclass,
        question: msg[HEADER..pos + 4].to_vec(),
    })
}

fn header(out: &mut Vec<u8>, id: u16, rd: bool, aa: bool, rcode: u8, qd: u16, an: u16) {
    out.extend_from_slice(&id.to_be_bytes());
    // QR, opcode 0, AA, RD as asked, RA (we forward), rcode
    let mut flags: u16 = 0x8000 | 0x0080 | u16::from(rcode & 0xf);
    if aa {
        flags |= 0x0400;
    }
    if rd {
        flags |= 0x0100;
    }
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&qd.to_be_bytes());
    out.extend_from_slice(&an.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// Encodes a dotted name as labels; None if a label is empty or too long.
fn encode_name(name: &str, out: &mut Vec<u8>) -> Option<()> {
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Some(())
}

/// The reply to `q`: `rcode` and `answers` (all names point back at the
/// question's). Answers that would pass `max` bytes are dropped and the
/// reply marked truncated, so the client retries over TCP.
pub fn reply(q: &Query, rcode: u8, answers: &[Answer], max: usize) -> Vec<u8> {
    let mut records: Vec<Vec<u8>> = Vec::new();
    for a in answers {
        let mut r = vec![0xc0, HEADER as u8];
        let (ty, data) = match a {
            Answer::A(ip) => (TYPE_A, ip.octets().to_vec()),
            Answer::Aaaa(ip) => (TYPE_AAAA, ip.octets().to_vec()),
            Answer::Ptr(name) => {
                let mut d = Vec::new();
                if encode_name(name, &mut d).is_none() {
                    continue;
                }
                (TYPE_PTR, d)
            }
        };
        r.extend_from_slice(&ty.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&TTL.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(&data);
        records.push(r);
    }
    let mut size = HEADER + q.question.len();
    let mut kept = 0;
    for r in &records {
        if size + r.len() > max {
            break;
        }
        size += r.len();
        kept += 1;
    }
    let mut out = Vec::with_capacity(size);
    header(&mut out, q.id, q.rd, true, rcode, 1, kept as u16);
    if kept < records.len() {
        out[2] |= 0x02; // TC
    }
    out.extend_from_slice(&q.question);
    for r in &records[..kept] {
        out.extend_from_slice(r);
    }
    out
}

/// A bare error reply to a message that could not be parsed (no
/// question section); None if it has no header to answer.
pub fn error_reply(msg: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let id = id_of(msg)?;
    let rd = msg[2] & 0x01 != 0;
    let mut out = Vec::with_capacity(HEADER);
    header(&mut out, id, rd, false, rcode, 0, 0);
    Some(out)
}

/// The address a reverse-lookup name stands for: `4.3.2.1.in-addr.arpa`
/// or the 32 nibbles of `ip6.arpa`.
pub fn reverse_addr(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let parts: Vec<u8> = rest
            .split('.')
            .map(|p| p.parse::<u8>().ok())
            .collect::<Option<_>>()?;
        if parts.len() != 4 {
            return None;
        }
        return Some(IpAddr::V4(Ipv4Addr::new(
            parts[3], parts[2], parts[1], parts[0],
        )));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .split('.')
        .map(|p| {
            (p.len() == 1)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let v = nibbles
        .iter()
        .rev()
        .fold(0u128, |acc, n| (acc << 4) | u128::from(*n));
    Some(IpAddr::V6(Ipv6Addr::from(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as a stub resolver sends it.
    pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        encode_name(name, &mut m).unwrap();
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    #[test]
    fn parses_a_query_and_answers_it() {
        let m = query(0x1234, "Alpha.Front", TYPE_A);
        let q = parse_query(&m).unwrap();
        assert_eq!((q.id, q.rd, q.qtype), (0x1234, true, TYPE_A));
        assert_eq!(q.name, "alpha.front");
        let r = reply(
            &q,
            NOERROR,
            &[
                Answer::A(Ipv4Addr::new(10, 0, 0, 2)),
                Answer::Ptr("a.b".into()),
            ],
            UDP_MAX,
        );
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80, "QR");
        assert_eq!(r[2] & 0x04, 0x04, "AA");
        assert_eq!(r[3] & 0x0f, NOERROR);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 2, "two answers");
        // The question comes back with its case.
        assert_eq!(&r[12..12 + 13], &m[12..12 + 13]);
        let a = &r[12 + q.question.len()..];
        assert_eq!(&a[..2], &[0xc0, 12]);
        assert_eq!(&a[10..12], &[0, 4]);
        assert_eq!(&a[12..16], &[10, 0, 0, 2]);
    }

    #[test]
    fn refuses_what_is_not_one_plain_question() {
        assert_eq!(parse_query(&[0; 5]), Err(FORMERR));
        let mut m = query(1, "a", TYPE_A);
        m[2] |= 0x80;
        assert_eq!(parse_query(&m), Err(FORMERR), "a response");
        let mut m = query(1, "a", TYPE_A);
        m[2] |= 0x10;
        assert_eq!(parse_query(&m), Err(NOTIMP), "opcode 2");
        let mut m = query(1, "a", TYPE_A);
        m[5] = 2;
        assert_eq!(parse_query(&m), Err(FORMERR), "two questions");
        let mut m = query(1, "a", TYPE_A);
        m[12] = 0xc0;
        assert_eq!(parse_query(&m), Err(FORMERR), "a pointer");
        let m = query(1, "abc", TYPE_A);
        for cut in 0..m.len() {
            assert!(parse_query(&m[..cut]).is_err(), "cut at {cut}");
        }
        let e = error_reply(&m, FORMERR).unwrap();
        assert_eq!((e.len(), e[3] & 0xf), (12, FORMERR));
        assert!(error_reply(&m[..11], FORMERR).is_none());
    }

    #[test]
    fn truncates_past_the_limit() {
        let q = parse_query(&query(7, "many", TYPE_A)).unwrap();
        let answers: Vec<Answer> = (0..40)
            .map(|i| Answer::A(Ipv4Addr::new(10, 0, 0, i)))
            .collect();
        let r = reply(&q, NOERROR, &answers, UDP_MAX);
        assert!(r.len() <= UDP_MAX);
        assert_eq!(r[2] & 0x02, 0x02, "TC");
        let full = reply(&q, NOERROR, &answers, 65535);
        assert_eq!(u16::from_be_bytes([full[6], full[7]]), 40);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_addr("5.0.87.10.in-addr.arpa"),
            Some("10.87.0.5".parse().unwrap())
        );
        let v6: Ipv6Addr = "fd00::1:2".parse().unwrap();
        let name: String = format!("{:032x}", u128::from(v6))
            .chars()
            .rev()
            .map(|c| format!("{c}."))
            .collect::<String>()
            + "ip6.arpa";
        assert_eq!(reverse_addr(&name), Some(IpAddr::V6(v6)));
        for bad in [
            "1.2.3.in-addr.arpa",
            "x.0.0.10.in-addr.arpa",
            "1.ip6.arpa",
            "alpha",
        ] {
            assert_eq!(reverse_addr(bad), None, "{bad}");
        }
    }
}

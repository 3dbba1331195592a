//! Which network addresses outbound alert deliveries may reach: never loopback, private,
//! link-local (cloud metadata at 169.254.169.254 included), shared (CGNAT), documentation,
//! multicast or otherwise special ranges, in IPv4, IPv6 and IPv4-mapped IPv6 form, unless an
//! operator allows them explicitly (`SONDEO_ALERT_ALLOW_ADDRESSES`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressBlock {
    /// The block's first address.
    pub base: IpAddr,
    /// Leading bits that every address of the block shares.
    pub prefix: u8,
}

/// An address block that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an IP address or CIDR block (such as 10.0.0.5 or 10.0.0.0/8)")]
pub struct InvalidAddressBlock(pub String);

impl AddressBlock {
    /// Parses `1.2.3.4`, `1.2.3.0/24`, `::1` or `fd00::/8`.
    pub fn parse(text: &str) -> Result<AddressBlock, InvalidAddressBlock> {
        let bad = || InvalidAddressBlock(text.chars().take(64).collect());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let base: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(AddressBlock { base, prefix })
    }

    /// Whether `ip` is in this block (IPv4-mapped IPv6 addresses count as their IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, canonical(ip)) {
            (IpAddr::V4(b), IpAddr::V4(a)) => prefix_eq(&b.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(b), IpAddr::V6(a)) => prefix_eq(&b.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a.get(..full) != b.get(..full) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// Addresses an operator allows even though they are private (tests, on-premises receivers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressAllowlist(Vec<AddressBlock>);

impl AddressAllowlist {
    /// Parses a comma-separated list of addresses and CIDR blocks; empty allows nothing.
    pub fn parse(list: &str) -> Result<AddressAllowlist, InvalidAddressBlock> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(AddressBlock::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(AddressAllowlist)
    }

    /// Whether nothing is allowed beyond public addresses.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is explicitly allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|b| b.contains(ip))
    }
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible address as IPv4; others unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Why an address may not be called, or None for an ordinary public address.
pub fn special_use(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "an unspecified (0.0.0.0/8) address",
        (10, _, _) => "a private address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (127, _, _) => "a loopback address",
        (169, 254, _) => "a link-local address (cloud metadata lives there)",
        (172, 16..=31, _) => "a private address",
        (192, 0, 0) => "an IETF protocol assignment address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (192, 88, 99) => "a deprecated relay address",
        (192, 168, _) => "a private address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some("the unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    Some(match seg[0] {
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xfc00..=0xfdff => "a unique local (private) address",
        0xff00..=0xffff => "a multicast address",
        0x2001 if seg[1] == 0x0db8 => "a documentation address",
        0x2001 if seg[1] < 0x0200 => "an IETF protocol assignment address",
        0x0064 if seg[1] == 0xff9b => "a NAT64 address",
        0x2002 => "a 6to4 address",
        0x0100 if seg[1..4] == [0, 0, 0] => "a discard-only address",
        // The rest of ::/8 (IPv4-compatible and other reserved forms).
        0x0000 => "a reserved address",
        _ => return None,
    })
}

/// Why `ip` may not be called under `allow`, or None when it may.
pub fn refusal(ip: IpAddr, allow: &AddressAllowlist) -> Option<&'static str> {
    if allow.allows(ip) {
        return None;
    }
    special_use(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_refused_in_every_form_and_public_ones_pass() {
        let refused = [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ];
        for a in refused {
            let ip: IpAddr = a.parse().unwrap();
            assert!(
                refusal(ip, &AddressAllowlist::default()).is_some(),
                "{a} should be refused"
            );
        }
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
        ];
        for a in allowed {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(refusal(ip, &AddressAllowlist::default()), None, "{a}");
        }
    }

    #[test]
    fn an_allowlist_lets_named_blocks_through_and_nothing_else() {
        let allow = AddressAllowlist::parse("127.0.0.1, 10.0.0.0/8 ,fd00::/8").unwrap();
        for a in ["127.0.0.1", "10.9.8.7", "::ffff:127.0.0.1", "fd00::5"] {
            assert_eq!(refusal(a.parse().unwrap(), &allow), None, "{a}");
        }
        for a in [
            "127.0.0.2",
            "::1",
            "169.254.169.254",
            "192.168.0.1",
            "fc00::1",
        ] {
            assert!(refusal(a.parse().unwrap(), &allow).is_some(), "{a}");
        }
    }

    #[test]
    fn malformed_blocks_are_named() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "localhost",
            "10.0.0/8",
            "1.2.3.4/x",
        ] {
            assert!(AddressAllowlist::parse(bad).is_err(), "{bad}");
        }
        assert!(AddressAllowlist::parse("").unwrap().is_empty());
        let b = AddressBlock::parse("172.16.0.0/12").unwrap();
        assert!(b.contains("172.20.1.1".parse().unwrap()));
        assert!(!b.contains("172.32.0.1".parse().unwrap()));
    }
}

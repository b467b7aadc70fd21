//! A network of real hosts on this machine, for tests and `make faults`:
//! each host is a Linux network namespace with its own address, joined to
//! the others by a veth pair to a bridge, and partitions are nftables rules
//! inside the hosts.
//!
//! The bridge sits in a namespace of its own (the "switch"); each network
//! gets its own switch and its own `/24` of `10.213.0.0/16` (private, RFC
//! 1918, used by nothing else here), so two at once don't see each other.
//! The one link into the machine's own namespace is the test's: a gateway
//! interface at `.254`, so the test process itself can call the hosts.
//! [`Drop`] deletes all of it. Needs root (CI runs as root); without it
//! [`TestNet::new`] fails saying so.
//!
//! A process runs on a host through [`TestNet::command`] (`ip netns exec`):
//! it sees only the host's loopback and its one interface.

use std::{
    net::Ipv4Addr,
    path::Path,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

/// The nftables table each host's partition rules live in.
const TABLE: &str = "beacon_faults";

/// One host of a [`TestNet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its name in the test (`registry`, `ratings-1`, …).
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Its address on the test subnet.
    pub ip: Ipv4Addr,
}

/// A bridge and hosts on it; deleted (namespaces, links, rules) when dropped.
/// Stop the processes running on it first.
#[derive(Debug)]
pub struct TestNet {
    switch: String,
    /// The test's own interface, in the machine's namespace.
    gateway: String,
    hosts: Vec<Host>,
}

/// Runs `ip ARGS…`, failing with what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args), "ip")
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let out: Output = command.output().map_err(|e| {
        format!("cannot run {what}: {e} (make test installs iproute2 and nftables)")
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} {:?} failed: {}",
            command.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `program` to run inside network namespace `netns` (`ip netns exec`,
/// which execs it: the child's pid is the program's).
pub fn exec(netns: &str, program: &Path) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns]).arg(program);
    command
}

impl TestNet {
    /// Creates hosts named `names` on one bridge. Fails (naming root) when
    /// namespaces can't be made.
    pub fn new(names: &[&str]) -> Result<Self, String> {
        static NETS: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let count = NETS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("beacon-{pid}-{count}");
        // Its own /24, told apart from other processes' by the pid.
        let third = u8::try_from((pid.wrapping_add(count)) % 250 + 1).unwrap_or(1);
        let subnet = [10, 213, third];
        let switch = format!("{prefix}-switch");
        ip(&["netns", "add", &switch]).map_err(|e| {
            format!("{e}\nthe network tests need root (to make network namespaces): run them as root, as CI does")
        })?;
        let gateway = format!("bt{}n{count}", pid % 100_000);
        let mut net = Self {
            switch,
            gateway: gateway.clone(),
            hosts: Vec::new(),
        };
        ip(&["-n", &net.switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &net.switch, "link", "set", "br0", "up"])?;
        ip(&[
            "link",
            "add",
            &gateway,
            "type",
            "veth",
            "peer",
            "name",
            "gw",
            "netns",
            &net.switch,
        ])?;
        let gateway_ip = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 254);
        ip(&["addr", "add", &format!("{gateway_ip}/24"), "dev", &gateway])?;
        ip(&["link", "set", &gateway, "up"])?;
        ip(&["-n", &net.switch, "link", "set", "gw", "master", "br0"])?;
        ip(&["-n", &net.switch, "link", "set", "gw", "up"])?;
        for (i, name) in names.iter().enumerate() {
            let n = u8::try_from(i + 1)
                .ok()
                .filter(|n| *n < 254)
                .ok_or("at most 253 hosts")?;
            let netns = format!("{prefix}-h{n}");
            ip(&["netns", "add", &netns])?;
            // Pushed now, so that a failure below still deletes it.
            let host = Host {
                name: (*name).to_owned(),
                netns: netns.clone(),
                ip: Ipv4Addr::new(subnet[0], subnet[1], subnet[2], n),
            };
            net.hosts.push(host.clone());
            let port = format!("p{n}");
            // Made straight inside the two namespaces: no name in the
            // machine's own namespace is touched.
            ip(&[
                "link",
                "add",
                "eth0",
                "netns",
                &netns,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &net.switch,
            ])?;
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{}/24", host.ip),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
            ip(&["-n", &net.switch, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &net.switch, "link", "set", &port, "up"])?;
            net.nft(&host, &format!("add table inet {TABLE}"))?;
            net.nft(
                &host,
                &format!("add chain inet {TABLE} input {{ type filter hook input priority 0; }}"),
            )?;
        }
        Ok(net)
    }

    /// The host called `name`.
    ///
    /// # Panics
    /// If there is none (a mistake in the test).
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name:?} in this test network"))
    }

    /// `program` to run on `host`.
    pub fn command(&self, host: &Host, program: &Path) -> Command {
        exec(&host.netns, program)
    }

    /// Cuts `a` and `b` apart, both ways: neither hears the other.
    pub fn cut(&self, a: &str, b: &str) -> Result<(), String> {
        self.cut_one_way(a, b)?;
        self.cut_one_way(b, a)
    }

    /// Packets from `from` to `to` are lost; the other way still works (a
    /// request arrives, its answer doesn't — or the reverse).
    pub fn cut_one_way(&self, from: &str, to: &str) -> Result<(), String> {
        let (from, to) = (self.host(from), self.host(to));
        self.nft(
            to,
            &format!("add rule inet {TABLE} input ip saddr {} drop", from.ip),
        )
    }

    /// Every partition healed.
    pub fn heal(&self) -> Result<(), String> {
        for host in &self.hosts {
            self.nft(host, &format!("flush chain inet {TABLE} input"))?;
        }
        Ok(())
    }

    fn nft(&self, host: &Host, rule: &str) -> Result<(), String> {
        let mut command = exec(&host.netns, Path::new("nft"));
        command.arg(rule);
        run(&mut command, "nft")
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = ip(&["link", "del", &self.gateway]);
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.netns]);
        }
        let _ = ip(&["netns", "del", &self.switch]);
    }
}

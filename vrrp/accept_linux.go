package vrrp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

var _ AcceptFilter = (*linuxAddresser)(nil)

// The accept filter is an nf_tables table owned by fwpaird:
//
//	table inet fwpair_accept {
//		set vips4 { type ipv4_addr; elements = { ... } }
//		set vips6 { type ipv6_addr; elements = { ... } }
//		chain input {
//			type filter hook input priority filter - 1; policy accept;
//			ip daddr @vips4 drop
//			ip6 daddr @vips6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
//			ip6 daddr @vips6 drop
//		}
//	}
//
// The input hook sees only packets delivered locally, after the NAT
// prerouting hook: traffic routed through the VIP (the gateway), DNATed
// port forwards to a VIP and replies to connections SNATed to a VIP are
// not delivered locally and never reach it. ARP is not IP. Neighbor
// Solicitations to a VIP (unicast neighbour unreachability detection)
// are accepted, so IPv6 hosts keep reaching the virtual router. The table
// is replaced as a whole in one nf_tables transaction, so there is no
// moment without it; operators' own tables are left alone.
const (
	acceptTable = "fwpair_accept"
	acceptChain = "input"
	acceptSet4  = "vips4"
	acceptSet6  = "vips6"
)

// acceptChainPriority runs the chain just before the usual filter chains.
var acceptChainPriority = nftables.ChainPriorityRef(-1)

// RefuseLocal replaces the fwpair_accept table in the platform's
// namespace; with no addresses it deletes it.
func (a *linuxAddresser) RefuseLocal(ctx context.Context, addrs []netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := a.nftConn()
	if err != nil {
		return err
	}
	table := &nftables.Table{Name: acceptTable, Family: nftables.TableFamilyINet}
	// Adding then deleting makes the delete succeed whether or not the
	// table exists (a leftover of a killed predecessor).
	c.AddTable(table)
	c.DelTable(table)
	if len(addrs) > 0 {
		if err := buildAcceptTable(c, table, addrs); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nf_tables table inet %s: %w", acceptTable, err)
	}
	return nil
}

// RefusingLocal reports whether the fwpair_accept table exists with its
// chain.
func (a *linuxAddresser) RefusingLocal(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	c, err := a.nftConn()
	if err != nil {
		return false, err
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nf_tables: list inet chains: %w", err)
	}
	return slices.ContainsFunc(chains, func(ch *nftables.Chain) bool {
		return ch.Table.Name == acceptTable && ch.Name == acceptChain
	}), nil
}

// nftConn opens an nf_tables connection in the platform's namespace.
func (a *linuxAddresser) nftConn() (*nftables.Conn, error) {
	p := (*linuxPlatform)(a)
	var opts []nftables.ConnOption
	if !p.own {
		opts = append(opts, nftables.WithNetNSFd(int(p.ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nf_tables: %w", err)
	}
	return c, nil
}

// buildAcceptTable queues the table described above on c.
func buildAcceptTable(c *nftables.Conn, table *nftables.Table, addrs []netip.Addr) error {
	c.AddTable(table)
	var el4, el6 []nftables.SetElement
	for _, a := range addrs {
		if a.Is4() {
			el4 = append(el4, nftables.SetElement{Key: a.AsSlice()})
		} else {
			el6 = append(el6, nftables.SetElement{Key: a.WithZone("").AsSlice()})
		}
	}
	set4 := &nftables.Set{Table: table, Name: acceptSet4, KeyType: nftables.TypeIPAddr}
	set6 := &nftables.Set{Table: table, Name: acceptSet6, KeyType: nftables.TypeIP6Addr}
	if err := c.AddSet(set4, el4); err != nil {
		return fmt.Errorf("nf_tables set %s: %w", acceptSet4, err)
	}
	if err := c.AddSet(set6, el6); err != nil {
		return fmt.Errorf("nf_tables set %s: %w", acceptSet6, err)
	}
	policy := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{
		Name:     acceptChain,
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: acceptChainPriority,
		Policy:   &policy,
	})
	for _, exprs := range acceptRules(set4, set6) {
		c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
	}
	return nil
}

// acceptRules are the chain's three rules, in order.
func acceptRules(set4, set6 *nftables.Set) [][]expr.Any {
	nfproto := func(proto byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		}
	}
	lookup := func(set *nftables.Set, offset, length uint32) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: length},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		}
	}
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	// ip daddr @vips4 drop
	r4 := append(append(nfproto(unix.NFPROTO_IPV4), lookup(set4, 16, 4)...), drop)
	// ip6 daddr @vips6 icmpv6 type { 135, 136 } accept
	nd := append(append(nfproto(unix.NFPROTO_IPV6), lookup(set6, 24, 16)...),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{icmpv6NeighborSolicit}, ToData: []byte{icmpv6NeighborAdvert}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	)
	// ip6 daddr @vips6 drop
	r6 := append(append(nfproto(unix.NFPROTO_IPV6), lookup(set6, 24, 16)...), drop)
	return [][]expr.Any{r4, nd, r6}
}

// icmpv6NeighborSolicit is the ICMPv6 Neighbor Solicitation type (RFC 4861).
const icmpv6NeighborSolicit = 135

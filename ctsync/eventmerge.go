package ctsync

// The kernel's UPDATE events carry only what changed for some attributes:
// the protocol info (CTA_PROTOINFO) only with IPCT_PROTOINFO, and, on some
// kernels, the labels only with IPCT_LABEL. A cached entry replaced by
// such an event would lose its labels and TCP state, and the next state
// sent to the peer (a refresh, a retransmission, a bulk) would carry none:
// conntrackd then commits the entry without its label. mergeUpdate keeps
// what the event left out. A label cleared to zero is also reported
// without CTA_LABELS; the periodic kernel dumps (refresh, overrun resync)
// read the full entry and correct it.

import "bytes"

// mergeUpdate fills in f, an UPDATE event's flow, from old, the cached
// state of the same key.
func mergeUpdate(f, old *Flow) {
	if f.Labels == nil && old.Labels != nil {
		f.Labels = bytes.Clone(old.Labels)
	}
	if !f.HasProtoState && old.HasProtoState && f.Proto == old.Proto {
		f.ProtoState, f.HasProtoState = old.ProtoState, true
	}
	if !f.HasTCPWScale && old.HasTCPWScale {
		f.TCPWScaleOrig, f.TCPWScaleReply, f.HasTCPWScale = old.TCPWScaleOrig, old.TCPWScaleReply, true
	}
	if f.Helper == "" {
		f.Helper = old.Helper
	}
	// CTA_SEQ_ADJ comes only with IPCT_SEQADJ (a helper's NAT mangling
	// changed the lengths, e.g. an FTP PORT rewritten to the VIP); losing
	// it would break the control connection after a failover.
	if !f.HasSeqAdj && old.HasSeqAdj {
		f.SeqAdjOrig, f.SeqAdjReply, f.HasSeqAdj = old.SeqAdjOrig, old.SeqAdjReply, true
	}
}

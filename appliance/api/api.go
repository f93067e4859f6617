// Package api holds the JSON types of fwpaird's control socket, shared by
// the daemon (appliance) and its clients (appliance/client, fwpairctl).
// Endpoints are versioned under /v1; errors come back as Error with an
// HTTP status that fwpairctl maps to its exit code.
package api

import "time"

// Endpoint paths.
const (
	PathStatus        = "/v1/status"
	PathStats         = "/v1/stats"
	PathCache         = "/v1/cache/" // + internal | external
	PathCommit        = "/v1/commit"
	PathResync        = "/v1/resync"
	PathFlush         = "/v1/flush" // ?cache=internal|external|all
	PathBulk          = "/v1/bulk"
	PathRequestResync = "/v1/request-resync"
	PathLogLevel      = "/v1/log-level" // ?level=debug|info|warn|error
)

// Status is what `fwpairctl status --json` prints.
type Status struct {
	Node           string      `json:"node"`
	Version        string      `json:"version"`
	StartedAt      time.Time   `json:"started_at"`
	VRRP           *VRRPStatus `json:"vrrp,omitempty"`
	Sync           *SyncStatus `json:"sync,omitempty"`
	LastTransition *Transition `json:"last_transition,omitempty"`
	// Ready: this node holds the peer's full state (or sync.ready_timeout
	// passed) and may preempt; ReadyReason says why (not).
	Ready       bool   `json:"ready"`
	ReadyReason string `json:"ready_reason,omitempty"`
}

// VRRPStatus is the sync group and its instances.
type VRRPStatus struct {
	Group      string     `json:"group"`
	GroupState string     `json:"group_state"` // INIT, BACKUP, MASTER, FAULT
	Instances  []Instance `json:"instances"`
	// PartialPartition describes a partial partition ("" if none): a
	// member hears no master while another does, so the group stays BACKUP.
	PartialPartition string `json:"partial_partition,omitempty"`
}

// Instance is one VRRP instance.
type Instance struct {
	Name            string            `json:"name"`
	Interface       string            `json:"interface"`
	VRID            int               `json:"vrid"`
	State           string            `json:"state"`
	Priority        int               `json:"priority"`
	VIPs            []string          `json:"vips"`
	Master          string            `json:"master,omitempty"`
	AdvertsSent     uint64            `json:"adverts_sent"`
	AdvertsReceived uint64            `json:"adverts_received"`
	Discarded       map[string]uint64 `json:"discarded,omitempty"`
}

// SyncStatus is the conntrack sync engine.
type SyncStatus struct {
	Mode            string `json:"mode"`
	PeerAlive       bool   `json:"peer_alive"`
	ActiveLink      string `json:"active_link,omitempty"`
	InternalEntries int    `json:"internal_entries"`
	ExternalEntries int    `json:"external_entries"`
	DirectInject    bool   `json:"direct_inject"`
	// Consistency is the continuous consistency check (nil when off).
	Consistency *Consistency `json:"consistency,omitempty"`
}

// Consistency is the state of the consistency check between the nodes.
type Consistency struct {
	// Repaired counts entries this node added, corrected or removed
	// because the peer's digest differed.
	Repaired uint64 `json:"repaired"`
	// LastClean is when this node's view last matched the peer's digest
	// entirely (zero: never, or this node is the MASTER).
	LastClean time.Time `json:"last_clean_check"`
	// Checks counts digests compared, Resent the states re-sent on the
	// peer's repair requests.
	Checks uint64 `json:"checks"`
	Resent uint64 `json:"resent"`
}

// Step is one timed step of a transition.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

// Transition is the last group transition with the timing of its steps.
type Transition struct {
	From          string         `json:"from"`
	To            string         `json:"to"`
	Reason        string         `json:"reason"`
	At            time.Time      `json:"at"`
	CommitEntries int            `json:"commit_entries"`
	CommitFailed  map[string]int `json:"commit_failed,omitempty"`
	CommitSeconds float64        `json:"commit_seconds"`
	// VIPsSeconds is the time from the decision to the VIPs being up.
	VIPsSeconds float64 `json:"vips_seconds"`
	Steps       []Step  `json:"steps"`
}

// Stats is every counter, grouped by engine (`fwpairctl stats`).
type Stats struct {
	VRRP map[string]uint64 `json:"vrrp,omitempty"`
	Sync map[string]uint64 `json:"sync,omitempty"`
}

// CacheEntry is one flow of a cache listing.
type CacheEntry struct {
	Proto   string `json:"proto"`
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	SrcPort uint16 `json:"sport,omitempty"`
	DstPort uint16 `json:"dport,omitempty"`
	Zone    uint16 `json:"zone,omitempty"`
	State   string `json:"state,omitempty"`
	Mark    uint32 `json:"mark,omitempty"`
	Timeout uint32 `json:"timeout"`
	SNAT    string `json:"snat,omitempty"`
	DNAT    string `json:"dnat,omitempty"`
}

// Cache is a cache listing.
type Cache struct {
	Which   string       `json:"which"`
	Entries []CacheEntry `json:"entries"`
}

// CommitResult answers /v1/commit.
type CommitResult struct {
	Created int            `json:"created"`
	Updated int            `json:"updated"`
	Failed  map[string]int `json:"failed,omitempty"`
	Seconds float64        `json:"seconds"`
}

// Result answers the other actions.
type Result struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code"` // bad_request, not_found, unavailable, internal
}

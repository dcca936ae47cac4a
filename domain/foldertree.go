package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// FolderNode is one folder of a mailbox's hierarchy as a source that tracks
// hierarchy changes reports it. Kind is "" for folder classes mailvault does
// not back up (tasks, notes, ...): they stay in the tree so that the paths
// of the folders below them are right.
type FolderNode struct {
	ID        string `json:"id"`
	Parent    string `json:"parent,omitempty"`
	Name      string `json:"name"`
	Kind      string `json:"kind,omitempty"`
	WellKnown string `json:"wk,omitempty"`
}

// FolderChanges is what a source reports about a mailbox's folder hierarchy
// since the token of the tree it was given: the folders added or changed,
// the ids removed, and the token the next discovery starts from. From is a
// digest of the token the changes continue (TokenDigest; "" for none);
// Full says Changed is the whole hierarchy (no token, or the server no
// longer knew it).
type FolderChanges struct {
	From    string       `json:"from,omitempty"`
	Full    bool         `json:"full,omitempty"`
	Changed []FolderNode `json:"changed,omitempty"`
	Removed []string     `json:"removed,omitempty"`
	Token   string       `json:"token,omitempty"`
}

// FolderTree is a mailbox's folder hierarchy as last discovered, and the
// token its next discovery asks the changes from.
type FolderTree struct {
	Token string       `json:"token"`
	Nodes []FolderNode `json:"nodes"`
	// Issued is when the source handed out Token (zero when not known).
	Issued time.Time `json:"-"`
}

// TokenDigest names a change token in a few bytes: what FolderChanges.From
// holds, so that the log does not carry every token twice.
func TokenDigest(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

// Apply returns the tree after ch. It refuses (false) changes that continue
// another token than the tree's: a tree rebuilt from a log whose earlier
// changes were compacted away must be listed again in full, not patched.
// The receiver is not modified.
func (t FolderTree) Apply(ch FolderChanges) (FolderTree, bool) {
	if !ch.Full && ch.From != TokenDigest(t.Token) {
		return FolderTree{}, false
	}
	var nodes []FolderNode
	if !ch.Full {
		nodes = append(nodes, t.Nodes...)
	}
	at := make(map[string]int, len(nodes)+len(ch.Changed))
	for i, n := range nodes {
		at[n.ID] = i
	}
	for _, n := range ch.Changed {
		if n.ID == "" {
			continue
		}
		if i, ok := at[n.ID]; ok {
			nodes[i] = n
			continue
		}
		at[n.ID] = len(nodes)
		nodes = append(nodes, n)
	}
	removed := make(map[string]bool, len(ch.Removed))
	for _, id := range ch.Removed {
		removed[id] = true
	}
	parent := make(map[string]string, len(nodes))
	for _, n := range nodes {
		parent[n.ID] = n.Parent
	}
	out := make([]FolderNode, 0, len(nodes))
	for _, n := range nodes {
		if !underRemoved(n.ID, parent, removed) {
			out = append(out, n)
		}
	}
	return FolderTree{Token: ch.Token, Nodes: out}, true
}

// underRemoved says whether id or one of its ancestors was removed: a
// server may report only the top of a deleted subtree.
func underRemoved(id string, parent map[string]string, removed map[string]bool) bool {
	for steps := 0; id != "" && steps <= len(parent); steps++ {
		if removed[id] {
			return true
		}
		id = parent[id]
	}
	return false
}

// Folders are the tree's folders of a kind mailvault backs up, parents
// first, each with its path ("Inbox/Receipts"). A folder whose parent is
// not in the tree (the hierarchy's root, which is not a folder of its own)
// is at the top, and so is one caught in a parent cycle a hostile server
// could report.
func (t FolderTree) Folders() []Folder {
	byID := make(map[string]*FolderNode, len(t.Nodes))
	for i := range t.Nodes {
		byID[t.Nodes[i].ID] = &t.Nodes[i]
	}
	children := map[string][]*FolderNode{}
	var tops []*FolderNode
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if p, ok := byID[n.Parent]; ok && p != n && !inCycle(n, byID) {
			children[p.ID] = append(children[p.ID], n)
		} else {
			tops = append(tops, n)
		}
	}
	var out []Folder
	var walk func(n *FolderNode, prefix string)
	walk = func(n *FolderNode, prefix string) {
		path := n.Name
		if prefix != "" {
			path = prefix + "/" + n.Name
		}
		if n.Kind != "" {
			out = append(out, Folder{ID: n.ID, Path: path, Kind: n.Kind, WellKnown: n.WellKnown})
		}
		for _, c := range children[n.ID] {
			walk(c, path)
		}
	}
	for _, n := range tops {
		walk(n, "")
	}
	return out
}

// inCycle says whether following n's parents leads back to n.
func inCycle(n *FolderNode, byID map[string]*FolderNode) bool {
	p := byID[n.Parent]
	for steps := 0; p != nil && steps <= len(byID); steps++ {
		if p == n {
			return true
		}
		p = byID[p.Parent]
	}
	return false
}

package domain

import "time"

// ItemKey identifies one version of one item in storage.
type ItemKey struct {
	Mailbox    string
	FolderPath string
	FolderID   string
	ItemID     string
	ChangeKey  string
}

// PutResult says what storing an item did.
type PutResult struct {
	SHA256  string
	Size    int64
	Existed bool
}

// StoredVersion is what the resume index knows of a stored item.
type StoredVersion struct {
	ChangeKey string `json:"ck"`
	Pass      string `json:"pass"`
}

// QuarantineRecord is what the quarantine remembers of a dirty item.
type QuarantineRecord struct {
	Mailbox     string    `json:"mailbox"`
	Folder      string    `json:"folder"`
	FolderID    string    `json:"folder_id"`
	ItemID      string    `json:"item_id"`
	Position    int       `json:"pos"`
	Code        string    `json:"code"`
	Inferred    bool      `json:"inferred,omitempty"`
	First       time.Time `json:"first"`
	LastAttempt time.Time `json:"last_attempt"`
	Attempts    int       `json:"attempts"`
}

package main

import (
	"strings"
	"testing"
)

func TestRemoteFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   remoteFlags
		bucket  string
		prefix  string
		lock    bool
		wantErr string
	}{
		{name: "local", flags: remoteFlags{}},
		{name: "bucket only", flags: remoteFlags{url: "s3://backups", endpoint: "s3.example"}, bucket: "backups"},
		{name: "bucket and prefix", flags: remoteFlags{url: "s3://backups/mail/vault/", endpoint: "s3.example"}, bucket: "backups", prefix: "mail/vault"},
		{name: "locked", flags: remoteFlags{url: "s3://b/p", endpoint: "e", lockDays: 30, lockMode: "compliance"}, bucket: "b", prefix: "p", lock: true},
		{name: "no scheme", flags: remoteFlags{url: "backups/mail"}, wantErr: "want s3://"},
		{name: "no bucket", flags: remoteFlags{url: "s3:///p"}, wantErr: "no bucket"},
		{name: "dot-dot prefix", flags: remoteFlags{url: "s3://b/../other"}, wantErr: ". or .."},
		{name: "lock without s3", flags: remoteFlags{lockDays: 3}, wantErr: "needs --s3"},
		{name: "bad lock mode", flags: remoteFlags{url: "s3://b", lockDays: 3, lockMode: "forever"}, wantErr: "lock mode"},
		{name: "absurd lock", flags: remoteFlags{url: "s3://b", lockDays: 100000, lockMode: "governance"}, wantErr: "lock period"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.flags.config()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.bucket == "" {
				if c != nil {
					t.Fatalf("a local storage got a remote: %+v", c)
				}
				return
			}
			if c.Bucket != tc.bucket || c.Prefix != tc.prefix || (c.Lock != nil) != tc.lock || c.Kind != "s3" {
				t.Fatalf("config %+v", c)
			}
		})
	}
}

package jobspec

import (
	"reflect"
	"testing"
)

// A job file is a user's: any file is read or refused with errors, never a
// panic; a job that converts writes back as YAML that reads as the same job.
func FuzzJobFile(f *testing.F) {
	for _, s := range []string{
		"name: nightly\nconnection: contoso\nstorage: nas\nall_mailboxes: true\nidle: \"00:05:00\"\nschedule:\n  pattern: daily\n  from: \"22:00\"\n  to: \"06:00\"\n  time_zone: Europe/Berlin\n",
		"name: holidays\nconnection: onprem\nstorage: nas\nmailboxes: [a@contoso.test]\ncontinuity: one-time\nschedule:\n  pattern: custom\n  periods:\n    - {start: \"2026-12-24 18:00\", end: \"2026-12-27 08:00\"}\n",
		"name: x\nidle: \"-00:00:01\"\nall_mailbox: true\n",
		"name: y\nconnection: c\nstorage: s\nmailboxes: [b@x.test]\nfolder_filter: {exclude: [junkemail]}\ntime_filter: {after: 2025-01-01}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		job, err := s.Job()
		if err != nil {
			return
		}
		out, err := s.YAML()
		if err != nil {
			t.Fatalf("a job that reads does not write: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("the job written does not read: %v\n%s", err, out)
		}
		job2, err := again.Job()
		if err != nil {
			t.Fatalf("the job written does not convert: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(job, job2) {
			t.Fatalf("the job changed on the way:\n%+v\n%+v\n%s", job, job2, out)
		}
	})
}

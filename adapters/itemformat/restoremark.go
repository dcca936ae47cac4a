package itemformat

import (
	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
)

// The restore mark: a named string property (set and name below) whose
// value is the storage's version id of what a restore made, so that a
// resumed or repeated restore finds it. Graph names it in extended
// property ids, EWS in ExtendedFieldURI; an export stream carries it as a
// named property, so an imported item is marked without a request more.
const (
	RestoreMarkSet  = "6f3e4c1a-9d1b-4b8e-9a61-4d1b8a6c2f10"
	RestoreMarkName = "MailvaultRestoreId"
)

var restoreMarkSet = ft.MustGUID(RestoreMarkSet)

func isRestoreMark(p ft.Prop) bool {
	return p.Named != nil && p.Named.ByName && p.Named.Set == restoreMarkSet && p.Named.Name == RestoreMarkName
}

// MarkStream returns an export stream with the restore mark set to version
// (an earlier mark, from a restore the item was backed up after,
// replaced), framed as exports frame it. A stream that does not decode is
// an error (fasttransfer.ErrMalformed).
func MarkStream(stream []byte, version string) ([]byte, error) {
	m, err := ft.Decode(stream)
	if err != nil {
		return nil, err
	}
	props := make(ft.Props, 0, len(m.Props)+1)
	for _, p := range m.Props {
		if !isRestoreMark(p) {
			props = append(props, p)
		}
	}
	m.Props = append(props, ft.WithStringName(ft.String16(0, version), restoreMarkSet, RestoreMarkName))
	return ft.Encode(m)
}

// StreamMark is the restore mark an export stream carries; "" for none
// (or a stream that does not decode).
func StreamMark(stream []byte) string {
	m, err := ft.Decode(stream)
	if err != nil {
		return ""
	}
	for _, p := range m.Props {
		if isRestoreMark(p) {
			return p.Text()
		}
	}
	return ""
}

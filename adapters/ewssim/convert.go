package ewssim

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// convertId converts item and folder ids between EWS's formats (ConvertId).
// The simulator's EwsId is the id it hands out; its EntryId is those bytes
// in base64 and its HexEntryId the same in hex, so every conversion is
// reversible. An id that is none of the simulator's answers
// ErrorInvalidIdMalformed, as Exchange does; clients (exchangelib) send
// such a dummy to learn the server's version from the reply's header.
func (s *Server) convertId(c *opContext) (string, *throttle) {
	var req struct {
		Destination string `xml:"DestinationFormat,attr"`
		IDs         []struct {
			ID      string `xml:"Id,attr"`
			Format  string `xml:"Format,attr"`
			Mailbox string `xml:"Mailbox,attr"`
		} `xml:"SourceIds>AlternateId"`
	}
	if !c.decode(&req) {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.count = len(req.IDs)
	const op = "ConvertId"
	var b strings.Builder
	for _, id := range req.IDs {
		ews, ok := fromFormat(id.Format, id.ID)
		box := s.store.Box(id.Mailbox)
		if ok && box != nil {
			_, _, ok = box.Lookup(ews)
			if !ok {
				_, ok = box.ByID[ews]
			}
		}
		out, known := toFormat(req.Destination, ews)
		if !ok || box == nil || !known {
			b.WriteString(failure(op, "ErrorInvalidIdMalformed", "Id is malformed."))
			continue
		}
		b.WriteString(success(op, `<m:AlternateId xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="t:AlternateIdType" Format="`+esc(req.Destination)+
			`" Id="`+esc(out)+`" Mailbox="`+esc(box.Address)+`"/>`))
	}
	return b.String(), nil
}

func fromFormat(format, id string) (string, bool) {
	switch format {
	case "EwsId", "EwsLegacyId", "OwaId":
		return id, id != ""
	case "EntryId", "StoreId":
		b, err := base64.StdEncoding.DecodeString(id)
		return string(b), err == nil && len(b) > 0
	case "HexEntryId":
		b, err := hex.DecodeString(id)
		return string(b), err == nil && len(b) > 0
	}
	return "", false
}

func toFormat(format, ews string) (string, bool) {
	switch format {
	case "EwsId", "EwsLegacyId", "OwaId":
		return ews, true
	case "EntryId", "StoreId":
		return base64.StdEncoding.EncodeToString([]byte(ews)), true
	case "HexEntryId":
		return strings.ToUpper(hex.EncodeToString([]byte(ews))), true
	}
	return "", false
}

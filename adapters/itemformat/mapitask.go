package itemformat

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
)

// Task properties ([MS-OXOTASK]).
var psetidTask = ft.MustGUID("00062003-0000-0000-C000-000000000046")

const (
	lidTaskStatus        = 0x8101
	lidPercentComplete   = 0x8102
	lidTaskStartDate     = 0x8104
	lidTaskDueDate       = 0x8105
	lidTaskDateCompleted = 0x810F
	lidTaskComplete      = 0x811C
)

var tagSearchKey = ft.NewTag(0x300B, ft.TypeBinary)

// taskStatuses are PidLidTaskStatus's values as iCalendar's STATUS; a task
// waiting on someone else or deferred has no status of its own there.
var taskStatuses = []string{"NEEDS-ACTION", "IN-PROCESS", "COMPLETED", "NEEDS-ACTION", "CANCELLED"}

// taskICS writes a task as an iCalendar VTODO. Exchange keeps no UID for
// tasks: the VTODO's is the task's search key in hex, the same every time.
func taskICS(m *ft.Message) ([]byte, error) {
	ps := m.Props
	c := ical.NewComponent(ical.CompToDo)
	uid := strings.ToUpper(hex.EncodeToString(ps.Bytes(tagSearchKey)))
	if uid == "" {
		return nil, fmt.Errorf("the task has no search key to name it by")
	}
	c.Props.SetText(ical.PropUID, uid)
	c.Props.SetDateTime(ical.PropDateTimeStamp, firstTime(ps.Time(tagLastModified), ps.Time(tagCreationTime), time.Unix(0, 0)).UTC())
	if t := named(ps, psetidTask, lidTaskStartDate).Time(); !t.IsZero() {
		c.Props.SetDateTime(ical.PropDateTimeStart, t)
	}
	if t := named(ps, psetidTask, lidTaskDueDate).Time(); !t.IsZero() {
		c.Props.SetDateTime(ical.PropDue, t)
	}
	if s := ps.String(tagSubject); s != "" {
		c.Props.SetText(ical.PropSummary, s)
	}
	if s := ps.String(tagBody); s != "" {
		c.Props.SetText(ical.PropDescription, s)
	}
	if st := named(ps, psetidTask, lidTaskStatus).Int32(); st >= 0 && int(st) < len(taskStatuses) {
		c.Props.SetText(ical.PropStatus, taskStatuses[st])
	}
	if p, ok := ps.GetNamed(psetidTask, lidPercentComplete); ok && len(p.Value) == 8 {
		pct := math.Float64frombits(binary.LittleEndian.Uint64(p.Value))
		if pct >= 0 && pct <= 1 {
			p := ical.NewProp(ical.PropPercentComplete)
			p.Value = strconv.Itoa(int(math.Round(pct * 100)))
			c.Props.Set(p)
		}
	}
	if t := named(ps, psetidTask, lidTaskDateCompleted).Time(); !t.IsZero() {
		c.Props.SetDateTime(ical.PropCompleted, t)
	}
	return publish("-//mailvault//FastTransfer//EN", []*ical.Component{c})
}

// taskProps converts a VTODO into a task's properties; uid becomes its
// search key.
func taskProps(todo *ical.Component, m *ft.Message) {
	add := func(p ft.Prop) { m.Props = append(m.Props, p) }
	add(ft.String16(tagMessageClass, "IPM.Task"))
	text := func(name string) string {
		if p := todo.Props.Get(name); p != nil {
			if s, err := p.Text(); err == nil {
				return s
			}
		}
		return ""
	}
	if s := text(ical.PropSummary); s != "" {
		add(ft.String16(tagSubject, s))
	}
	if s := text(ical.PropDescription); s != "" {
		add(ft.String16(tagBody, s))
	}
	uid := text(ical.PropUID)
	key := []byte(uid)
	if b, err := hex.DecodeString(uid); err == nil && len(b) > 0 {
		key = b
	}
	add(ft.BinaryProp(tagSearchKey, key))
	for _, t := range []struct {
		prop string
		lid  uint32
	}{{ical.PropDateTimeStart, lidTaskStartDate}, {ical.PropDue, lidTaskDueDate}, {ical.PropCompleted, lidTaskDateCompleted}} {
		if v, err := todo.Props.DateTime(t.prop, time.UTC); err == nil && !v.IsZero() {
			add(ft.WithName(ft.TimeProp(0, v.UTC()), psetidTask, t.lid))
		}
	}
	status := int32(0)
	switch strings.ToUpper(text(ical.PropStatus)) {
	case "IN-PROCESS":
		status = 1
	case "COMPLETED":
		status = 2
	case "CANCELLED":
		status = 4
	}
	add(ft.WithName(ft.Int32Prop(0, status), psetidTask, lidTaskStatus))
	add(ft.WithName(ft.BoolProp(0, status == 2), psetidTask, lidTaskComplete))
	percent := ""
	if p := todo.Props.Get(ical.PropPercentComplete); p != nil {
		percent = p.Value // an INTEGER, which Text refuses
	}
	if pct, err := strconv.Atoi(percent); err == nil && pct >= 0 && pct <= 100 {
		v := make([]byte, 8)
		binary.LittleEndian.PutUint64(v, math.Float64bits(float64(pct)/100))
		add(ft.WithName(ft.Prop{Tag: ft.NewTag(0, ft.TypeFloating64), Value: v}, psetidTask, lidPercentComplete))
	}
}

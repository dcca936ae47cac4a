// Package export writes stored items in the formats other tools read: EML
// files, one mbox per folder, a Maildir tree, ICS calendars, VCF address
// books, or a zip of EML, ICS and VCF. Every name that comes from a server
// is sanitised, and every file is created through an os.Root (or inside the
// zip), so nothing can be written outside the output.
//
// Every file is written under a temporary name and renamed when whole, so a
// killed export never leaves a cut file under a final name; an export
// started again into the same directory with the same selection skips what
// is there and continues.
package export

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-mbox"

	"github.com/mailvault/mailvault/adapters/itemformat"
)

// Formats export writes.
var Formats = []string{"eml", "mbox", "maildir", "ics", "vcf", "zip"}

// Item is one stored item to export.
type Item struct {
	ID       string // the storage's version id: names EML files
	Subject  string // for naming the item when it cannot be exported
	Mailbox  string
	Folder   string // path with "/" between levels
	FolderID string
	Kind     string // mail, calendar, contacts, tasks, notes
	Format   string
	Content  []byte
}

// Result counts what an export wrote and what it left out, and why.
type Result struct {
	Messages int            `json:"messages"`
	Events   int            `json:"events"`
	Tasks    int            `json:"tasks"`
	Contacts int            `json:"contacts"`
	Files    int            `json:"files"`
	Bytes    int64          `json:"bytes"`
	Skipped  map[string]int `json:"skipped"` // reason -> items
	// Failed names up to 100 items that could not be converted.
	Failed []string `json:"failed,omitempty"`
	// Resumed counts items an earlier, interrupted export of the same
	// selection had written already.
	Resumed int `json:"already_exported"`
	// Damaged names the items the storage could not give back intact
	// (all of them, for the report: each is data the user does not get).
	Damaged []string `json:"damaged,omitempty"`
}

// sink creates files by relative, already sanitised, slash-separated path;
// a created file appears under its name only when closed whole.
type sink interface {
	create(rel string) (io.WriteCloser, error)
	exists(rel string) bool
	close() error
}

// Options shape the contacts an export writes.
type Options struct {
	// CardVersion is the vCard version written: "3.0" (the default: what
	// Outlook imports) or "4.0".
	CardVersion string `json:"vcard_version,omitempty"`
	// CardPerContact writes one .vcf file per contact instead of one per
	// contacts folder (Outlook imports only a file's first contact).
	CardPerContact bool `json:"vcard_per_contact,omitempty"`
}

// CardFiles names the two ways of filing contacts.
var CardFiles = []string{"folder", "contact"}

// Exporter writes items in one format. Items of one folder must come
// together (the storage index orders them so); a folder file is open only
// while its items arrive, so memory does not grow with the export.
type Exporter struct {
	format string
	opts   Options
	out    string
	sink   sink
	res    Result

	cur     *folderFile
	claimed map[string]string // folder file path -> folder id that owns it
	paths   map[string]string // mailbox NUL folder id -> its claimed path
	done    map[string]bool   // folders an earlier attempt finished
	tzids   map[string]bool   // VTIMEZONEs written to the current ICS file
}

type folderFile struct {
	key  string // mailbox NUL folder id
	rel  string
	w    io.WriteCloser
	mbox *mbox.Writer
	ics  bool
}

// partialSuffix marks a file being written; a killed export leaves such
// files, and the next one removes them.
const partialSuffix = ".mailvault-partial"

// stateFile, in an export directory, names what is exported there, so that
// a second run continues the same export and refuses any other.
const stateFile = ".mailvault-export"

// ErrRefused marks an export refused for what it was asked (a format, an
// --out that holds something else), as opposed to one the system failed.
var ErrRefused = errors.New("export refused")

type refusal struct{ msg string }

func (r refusal) Error() string        { return r.msg }
func (r refusal) Is(target error) bool { return target == ErrRefused }

func refused(format string, a ...any) error { return refusal{fmt.Sprintf(format, a...)} }

// New starts an export into out: a directory that must be empty, not
// exist, or hold an interrupted export of the same selection (key names it:
// the storage and the filters), which is continued; for zip a file that
// must not exist (an interrupted zip is written again from the start).
func New(format, out, key string, opts Options) (*Exporter, error) {
	if opts.CardVersion == "" {
		opts.CardVersion = "3.0"
	}
	if !slices.Contains(itemformat.CardVersions, opts.CardVersion) {
		return nil, refused("vCard version %q: use %s", opts.CardVersion, strings.Join(itemformat.CardVersions, " or "))
	}
	// Contacts filed another way make another export: the state names it.
	key += fmt.Sprintf("\x00vcard %s per-contact=%t", opts.CardVersion, opts.CardPerContact)
	e := &Exporter{format: format, opts: opts, out: out, claimed: map[string]string{}, paths: map[string]string{}, done: map[string]bool{},
		res: Result{Skipped: map[string]int{}}}
	switch format {
	case "zip":
		if _, err := os.Lstat(out); err == nil {
			return nil, refused("%s exists: export into a new file", out)
		}
		f, err := os.OpenFile(out+partialSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", out, err)
		}
		e.sink = &zipSink{f: f, z: zip.NewWriter(f), final: out}
	case "eml", "mbox", "maildir", "ics", "vcf":
		if err := os.MkdirAll(out, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", out, err)
		}
		if err := claimDir(out, format, key); err != nil {
			return nil, err
		}
		root, err := os.OpenRoot(out)
		if err != nil {
			return nil, err
		}
		e.sink = &dirSink{root: root, maildir: format == "maildir"}
	default:
		return nil, refused("export format %q: use %s", format, strings.Join(Formats, ", "))
	}
	return e, nil
}

type exportState struct {
	Format string `json:"format"`
	Key    string `json:"selection"`
}

// claimDir checks that out is empty (and records what goes there) or holds
// an interrupted export of the same format and selection, whose partial
// files it removes.
func claimDir(out, format, key string) error {
	want := exportState{Format: format, Key: key}
	entries, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("read %s: %w", out, err)
	}
	if len(entries) > 0 {
		b, err := os.ReadFile(filepath.Join(out, stateFile))
		var got exportState
		if err != nil || json.Unmarshal(b, &got) != nil {
			return refused("%s is not empty: export into a new or empty directory", out)
		}
		if got != want {
			return refused("%s holds an export of another format or selection: export into a new or empty directory", out)
		}
		return filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), partialSuffix) {
				return os.Remove(p)
			}
			return err
		})
	}
	b, _ := json.Marshal(want)
	return os.WriteFile(filepath.Join(out, stateFile), b, 0o600)
}

// SafeName makes one server-chosen name a harmless path element: no
// separators, no "." or "..", no control characters, no leading dot, no
// trailing dot or space (Windows), at most 120 bytes.
func SafeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '/' || r == '\\' || r == ':' || r == '*' || r == '?' || r == '"' || r == '<' || r == '>' || r == '|' || r == 0:
			b.WriteRune('_')
		case unicode.IsControl(r) || r == utf8.RuneError:
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	n := strings.TrimRight(b.String(), ". ")
	if strings.HasPrefix(n, ".") {
		n = "_" + n[1:]
	}
	for len(n) > 120 {
		_, size := utf8.DecodeLastRuneInString(n)
		n = n[:len(n)-size]
	}
	if n == "" {
		n = "_"
	}
	return n
}

// folderPath is the sanitised relative path of a mailbox's folder.
func folderPath(mailbox, folder string) string {
	parts := []string{SafeName(strings.ToLower(mailbox))}
	for _, level := range strings.Split(folder, "/") {
		parts = append(parts, SafeName(level))
	}
	return path.Join(parts...)
}

// Wanted tells whether the format takes items of this kind; an item it
// does not take is counted as left out.
func (e *Exporter) Wanted(it Item) bool {
	// Notes and journal entries are messages (a subject and a text) and
	// tasks are calendar data (VTODO), so each goes with its kin.
	kind := map[string]string{"notes": "mail", "journal": "mail", "tasks": "calendar"}[it.Kind]
	if kind == "" {
		kind = it.Kind
	}
	want := map[string]string{"eml": "mail", "mbox": "mail", "maildir": "mail", "ics": "calendar", "vcf": "contacts"}[e.format]
	if want != "" && kind != want {
		e.res.Skipped[it.Kind+" items (not exported as "+e.format+")"]++
		return false
	}
	return true
}

// Exported tells whether an earlier, interrupted export wrote the item
// already (its file, or its whole folder's file, is there); it is then
// counted and not read again.
func (e *Exporter) Exported(it Item) bool {
	var done bool
	switch e.format {
	case "zip":
		return false
	case "eml":
		done = e.sink.exists(e.itemPath(it))
	case "vcf":
		if e.opts.CardPerContact {
			done = e.sink.exists(e.cardPath(it))
			break
		}
		e.folderRel(it, ".vcf")
		done = e.done[it.Mailbox+"\x00"+it.FolderID]
	case "maildir":
		rel := e.folderRel(it, "")
		done = e.sink.exists(rel+"/new/"+maildirName(it)) || e.sink.exists(rel+"/cur/"+maildirName(it))
	default:
		e.folderRel(it, folderExt[e.format])
		done = e.done[it.Mailbox+"\x00"+it.FolderID]
	}
	if done {
		e.res.Resumed++
	}
	return done
}

var folderExt = map[string]string{"mbox": ".mbox", "ics": ".ics", "vcf": ".vcf"}

// Damaged records an item the storage could not give back intact.
func (e *Exporter) Damaged(it Item, err error) {
	e.res.Skipped["items damaged in the storage"]++
	e.res.Damaged = append(e.res.Damaged, fmt.Sprintf("%s %s/%s %q: %v", it.ID, it.Mailbox, it.Folder, it.Subject, err))
}

func (e *Exporter) itemPath(it Item) string {
	return path.Join(e.folderRel(it, ""), SafeName(it.ID)+".eml")
}

func (e *Exporter) cardPath(it Item) string {
	return path.Join(e.folderRel(it, ""), SafeName(it.ID)+".vcf")
}

func maildirName(it Item) string { return SafeName(it.ID) + ".mailvault" }

// folderRel is the folder's path in the export: its sanitised path, made
// distinct from another folder whose name sanitises alike. The first claim
// also notes whether an earlier attempt finished the folder's file.
func (e *Exporter) folderRel(it Item, ext string) string {
	key := it.Mailbox + "\x00" + it.FolderID
	if rel, ok := e.paths[key]; ok {
		return rel
	}
	rel := folderPath(it.Mailbox, it.Folder)
	for n := 2; e.claimed[rel+ext] != "" && e.claimed[rel+ext] != key; n++ {
		rel = fmt.Sprintf("%s~%d", folderPath(it.Mailbox, it.Folder), n)
	}
	e.claimed[rel+ext] = key
	e.paths[key] = rel
	if ext != "" && e.format != "zip" && e.sink.exists(rel+ext) {
		e.done[key] = true
	}
	return rel
}

// Add exports one item, or counts why it cannot be.
func (e *Exporter) Add(it Item) error {
	if !e.Wanted(it) {
		return nil
	}
	var err error
	switch it.Kind {
	case "calendar", "tasks":
		err = e.addEvent(it)
	case "contacts":
		err = e.addContact(it)
	default:
		err = e.addMessage(it)
	}
	var conv *conversionError
	if errors.As(err, &conv) {
		e.res.Skipped[conv.reason]++
		if len(e.res.Failed) < 100 {
			e.res.Failed = append(e.res.Failed, fmt.Sprintf("%s %s/%s: %v", it.ID, it.Mailbox, it.Folder, conv.err))
		}
		return nil
	}
	return err
}

// conversionError: the item cannot be written in the format; the export
// goes on without it.
type conversionError struct {
	reason string
	err    error
}

func (c *conversionError) Error() string { return c.err.Error() }

func (e *Exporter) addMessage(it Item) error {
	raw, err := itemformat.MIME(it.Format, it.Content)
	if err != nil {
		reason := "messages without MIME"
		if errors.Is(err, itemformat.ErrOpaque) {
			reason = "messages stored as opaque export streams"
		}
		return &conversionError{reason, err}
	}
	switch e.format {
	case "eml", "zip":
		// In a zip only one entry is open at a time.
		if err := e.closeFolder(); err != nil {
			return err
		}
		w, err := e.sink.create(e.itemPath(it))
		if err != nil {
			return err
		}
		if err := e.write(w, raw); err != nil {
			return err
		}
	case "mbox":
		f, err := e.folder(it, ".mbox")
		if err != nil {
			return err
		}
		from, date := itemformat.MessageInfo(raw)
		w, err := f.mbox.CreateMessage(from, date)
		if err != nil {
			return err
		}
		if _, err := w.Write(raw); err != nil {
			return fmt.Errorf("write mbox: %w", err)
		}
	case "maildir":
		// A Maildir delivery: written under tmp/, renamed into new/, named
		// by the version id so that a second attempt knows it.
		f, err := e.folder(it, "")
		if err != nil {
			return err
		}
		w, err := e.sink.create(f.rel + "/new/" + maildirName(it))
		if err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
		if err := e.write(w, raw); err != nil {
			return err
		}
	}
	e.res.Messages++
	return nil
}

func (e *Exporter) write(w io.WriteCloser, b []byte) error {
	if _, err := w.Write(b); err != nil {
		w.Close()
		return fmt.Errorf("write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	e.res.Files++
	e.res.Bytes += int64(len(b))
	return nil
}

func (e *Exporter) addEvent(it Item) error {
	comps, err := itemformat.CalendarComponents(it.Format, it.Content)
	if err != nil {
		return &conversionError{it.Kind + " items without iCalendar data", err}
	}
	f, err := e.folder(it, ".ics")
	if err != nil {
		return err
	}
	for _, c := range comps {
		if c.Name == ical.CompTimezone {
			id := c.Props.Get(ical.PropTimezoneID)
			if id == nil || e.tzids[id.Value] {
				continue
			}
			e.tzids[id.Value] = true
		}
		b, err := encodeComponent(c)
		if err != nil {
			return &conversionError{"calendar items without iCalendar data", err}
		}
		if _, err := f.w.Write(b); err != nil {
			return fmt.Errorf("write ics: %w", err)
		}
	}
	if it.Kind == "tasks" {
		e.res.Tasks++
	} else {
		e.res.Events++
	}
	return nil
}

// vcardOf is a contact as a vCard of version: what an export writes and
// a download gives.
func vcardOf(it Item, version string) ([]byte, error) {
	card, err := itemformat.Card(it.Format, it.Content)
	if err != nil {
		return nil, &conversionError{"contacts without vCard data", err}
	}
	if card, err = itemformat.CardAs(card, version); err != nil {
		return nil, err
	}
	b, err := itemformat.EncodeCard(card)
	if err != nil {
		return nil, &conversionError{"contacts without vCard data", err}
	}
	return b, nil
}

func (e *Exporter) addContact(it Item) error {
	b, err := vcardOf(it, e.opts.CardVersion)
	if err != nil {
		return err
	}
	if e.opts.CardPerContact {
		// In a zip only one entry is open at a time.
		if err := e.closeFolder(); err != nil {
			return err
		}
		w, err := e.sink.create(e.cardPath(it))
		if err != nil {
			return err
		}
		if err := e.write(w, b); err != nil {
			return err
		}
	} else {
		f, err := e.folder(it, ".vcf")
		if err != nil {
			return err
		}
		if _, err := f.w.Write(b); err != nil {
			return fmt.Errorf("write vcf: %w", err)
		}
	}
	e.res.Contacts++
	return nil
}

const icsHeader = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailvault//export//EN\r\nCALSCALE:GREGORIAN\r\n"
const icsFooter = "END:VCALENDAR\r\n"

// encodeComponent writes one component with the library's encoder (line
// folding, escaping) by encoding a calendar around it and keeping the
// component's lines, so a folder's calendar streams out event by event.
func encodeComponent(c *ical.Component) ([]byte, error) {
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, "-//mailvault//export//EN")
	cal.Children = []*ical.Component{c}
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	start := bytes.Index(b, []byte("BEGIN:"+c.Name+"\r\n"))
	end := bytes.LastIndex(b, []byte("END:VCALENDAR"))
	if start < 0 || end < start {
		return nil, fmt.Errorf("unexpected iCalendar encoding")
	}
	return b[start:end], nil
}

// folder returns the open file of the item's folder, closing the previous
// folder's file when the folder changes.
func (e *Exporter) folder(it Item, ext string) (*folderFile, error) {
	key := it.Mailbox + "\x00" + it.FolderID
	if e.cur != nil && e.cur.key == key {
		return e.cur, nil
	}
	if err := e.closeFolder(); err != nil {
		return nil, err
	}
	rel := e.folderRel(it, ext)
	f := &folderFile{key: key, rel: rel}
	if e.format == "maildir" {
		ds, ok := e.sink.(*dirSink)
		if !ok {
			return nil, errors.New("maildir needs a directory")
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := ds.root.MkdirAll(filepath.FromSlash(rel+"/"+sub), 0o700); err != nil {
				return nil, fmt.Errorf("create maildir %s: %w", rel, err)
			}
		}
		e.cur = f
		return f, nil
	}
	file, err := e.sink.create(rel + ext)
	if err != nil {
		return nil, err
	}
	w := &countingWriter{WriteCloser: file, n: &e.res.Bytes}
	f.w = w
	e.res.Files++
	switch ext {
	case ".mbox":
		f.mbox = mbox.NewWriter(w)
	case ".ics":
		f.ics = true
		e.tzids = map[string]bool{}
		if _, err := io.WriteString(w, icsHeader); err != nil {
			return nil, err
		}
	}
	e.cur = f
	return f, nil
}

func (e *Exporter) closeFolder() error {
	f := e.cur
	e.cur = nil
	if f == nil || f.w == nil {
		return nil
	}
	var err error
	if f.mbox != nil {
		err = f.mbox.Close()
	}
	if f.ics {
		_, err = io.WriteString(f.w, icsFooter)
	}
	if cerr := f.w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("finish folder file: %w", err)
	}
	return nil
}

// Abort stops an export that failed: the file being written stays under
// its temporary name (the next attempt removes it), nothing half-written
// takes a final name.
func (e *Exporter) Abort() Result {
	if e.cur != nil && e.cur.w != nil {
		if cw, ok := e.cur.w.(*countingWriter); ok {
			if a, ok := cw.WriteCloser.(*atomicFile); ok {
				a.f.Close()
			}
		}
	}
	e.cur = nil
	if z, ok := e.sink.(*zipSink); ok {
		z.f.Close()
		os.Remove(z.f.Name())
	} else {
		e.sink.close()
	}
	return e.res
}

// Close finishes the export and returns what it did.
func (e *Exporter) Close() (Result, error) {
	err := e.closeFolder()
	if cerr := e.sink.close(); err == nil {
		err = cerr
	}
	return e.res, err
}

// SkipReasons lists the skip reasons in a stable order.
func (r Result) SkipReasons() []string {
	var out []string
	for k := range r.Skipped {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type dirSink struct {
	root    *os.Root
	maildir bool
}

func (d *dirSink) create(rel string) (io.WriteCloser, error) {
	name := filepath.FromSlash(rel)
	if dir := filepath.Dir(name); dir != "." {
		if err := d.root.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if _, err := d.root.Lstat(name); err == nil {
		return nil, fmt.Errorf("create %s: %w", rel, os.ErrExist)
	}
	tmp := name + partialSuffix
	if d.maildir {
		// Maildir: deliveries are written in tmp/ and renamed into new/.
		tmp = filepath.Join(filepath.Dir(filepath.Dir(name)), "tmp", filepath.Base(name)+partialSuffix)
	}
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", rel, err)
	}
	return &atomicFile{root: d.root, f: f, tmp: tmp, name: name}, nil
}

func (d *dirSink) exists(rel string) bool {
	_, err := d.root.Lstat(filepath.FromSlash(rel))
	return err == nil
}

func (d *dirSink) close() error { return d.root.Close() }

// atomicFile is written under a temporary name and renamed to its own when
// closed whole.
type atomicFile struct {
	root      *os.Root
	f         *os.File
	tmp, name string
}

func (a *atomicFile) Write(p []byte) (int, error) { return a.f.Write(p) }

func (a *atomicFile) Close() error {
	if err := a.f.Close(); err != nil {
		a.root.Remove(a.tmp)
		return err
	}
	return a.root.Rename(a.tmp, a.name)
}

type zipSink struct {
	f     *os.File
	z     *zip.Writer
	final string
}

type zipEntry struct{ io.Writer }

func (zipEntry) Close() error { return nil }

func (s *zipSink) create(rel string) (io.WriteCloser, error) {
	w, err := s.z.CreateHeader(&zip.FileHeader{Name: rel, Method: zip.Deflate})
	if err != nil {
		return nil, err
	}
	return zipEntry{w}, nil
}

func (s *zipSink) exists(string) bool { return false }

// close finishes the zip and gives it its name: a zip cut short by a kill
// is never left under it.
func (s *zipSink) close() error {
	err := s.z.Close()
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(s.f.Name())
		return err
	}
	if _, err := os.Lstat(s.final); err == nil {
		os.Remove(s.f.Name())
		return fmt.Errorf("%s appeared while the export ran: the export is not put in its place", s.final)
	}
	return os.Rename(s.f.Name(), s.final)
}

// countingWriter adds what folder files write to the export's byte count.
type countingWriter struct {
	io.WriteCloser
	n *int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.WriteCloser.Write(p)
	*c.n += int64(n)
	return n, err
}

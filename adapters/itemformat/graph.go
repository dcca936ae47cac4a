package itemformat

import (
	"fmt"
	"strings"
	"time"
)

// Resource is the part of a Graph event or contact resource that export and
// restore carry over. Unknown fields are kept by working on the original
// JSON where it matters (restore posts the stored JSON, not this struct).
type Resource struct {
	ID           string `json:"id,omitempty"`
	Type         string `json:"type,omitempty"` // singleInstance, seriesMaster, exception, occurrence
	Subject      string `json:"subject,omitempty"`
	ICalUID      string `json:"iCalUId,omitempty"`
	LastModified string `json:"lastModifiedDateTime,omitempty"`

	Start         DateTimeTZ  `json:"start,omitzero"`
	End           DateTimeTZ  `json:"end,omitzero"`
	OriginalStart string      `json:"originalStart,omitempty"`
	IsAllDay      bool        `json:"isAllDay,omitempty"`
	IsCancelled   bool        `json:"isCancelled,omitempty"`
	Body          *Body       `json:"body,omitempty"`
	Location      *Location   `json:"location,omitempty"`
	Organizer     *Recipient  `json:"organizer,omitempty"`
	Attendees     []Attendee  `json:"attendees,omitempty"`
	Recurrence    *Recurrence `json:"recurrence,omitempty"`
	Exceptions    []Resource  `json:"exceptionOccurrences,omitempty"`
	// CancelledOccurrences (beta) name deleted occurrences of a series by
	// id; the date is the id's last "." part (OID.<series>.<yyyy-mm-dd>).
	CancelledOccurrences []string `json:"cancelledOccurrences,omitempty"`

	DisplayName     string   `json:"displayName,omitempty"`
	GivenName       string   `json:"givenName,omitempty"`
	Surname         string   `json:"surname,omitempty"`
	MiddleName      string   `json:"middleName,omitempty"`
	CompanyName     string   `json:"companyName,omitempty"`
	JobTitle        string   `json:"jobTitle,omitempty"`
	EmailAddresses  []Email  `json:"emailAddresses,omitempty"`
	BusinessPhones  []string `json:"businessPhones,omitempty"`
	HomePhones      []string `json:"homePhones,omitempty"`
	MobilePhone     string   `json:"mobilePhone,omitempty"`
	PersonalNotes   string   `json:"personalNotes,omitempty"`
	Birthday        string   `json:"birthday,omitempty"`
	BusinessAddress *Address `json:"businessAddress,omitempty"`
	HomeAddress     *Address `json:"homeAddress,omitempty"`
}

// DateTimeTZ is Graph's dateTimeTimeZone.
type DateTimeTZ struct {
	DateTime string `json:"dateTime"`
	TimeZone string `json:"timeZone"`
}

// Time parses d; a time zone Go does not know (Windows names) is an error.
func (d DateTimeTZ) Time() (time.Time, error) {
	if d.DateTime == "" {
		return time.Time{}, fmt.Errorf("no date")
	}
	loc, err := TimeZone(d.TimeZone)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.9999999", strings.TrimSuffix(d.DateTime, "Z"), loc)
	if err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// windowsZones maps the Windows zone names Exchange uses most to IANA.
var windowsZones = map[string]string{
	"UTC": "UTC", "GMT Standard Time": "Europe/London", "W. Europe Standard Time": "Europe/Berlin",
	"Romance Standard Time": "Europe/Paris", "Central Europe Standard Time": "Europe/Budapest",
	"Eastern Standard Time": "America/New_York", "Central Standard Time": "America/Chicago",
	"Mountain Standard Time": "America/Denver", "Pacific Standard Time": "America/Los_Angeles",
	"Tokyo Standard Time": "Asia/Tokyo", "India Standard Time": "Asia/Kolkata", "AUS Eastern Standard Time": "Australia/Sydney",
}

// TimeZone resolves an IANA or common Windows time zone name.
func TimeZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if iana, ok := windowsZones[name]; ok {
		name = iana
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}

// Body is an itemBody.
type Body struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

// Location is an event location.
type Location struct {
	DisplayName string `json:"displayName"`
}

// Email is an emailAddress.
type Email struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// Recipient is a recipient.
type Recipient struct {
	EmailAddress Email `json:"emailAddress"`
}

// Attendee is an attendee.
type Attendee struct {
	EmailAddress Email  `json:"emailAddress"`
	Type         string `json:"type,omitempty"`
}

// Address is a physicalAddress.
type Address struct {
	Street          string `json:"street,omitempty"`
	City            string `json:"city,omitempty"`
	State           string `json:"state,omitempty"`
	CountryOrRegion string `json:"countryOrRegion,omitempty"`
	PostalCode      string `json:"postalCode,omitempty"`
}

// Recurrence is a patternedRecurrence.
type Recurrence struct {
	Pattern RecurrencePattern `json:"pattern"`
	Range   RecurrenceRange   `json:"range"`
}

// RecurrencePattern is a recurrencePattern.
type RecurrencePattern struct {
	Type           string   `json:"type"` // daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly, relativeYearly
	Interval       int      `json:"interval"`
	Month          int      `json:"month,omitempty"`
	DayOfMonth     int      `json:"dayOfMonth,omitempty"`
	DaysOfWeek     []string `json:"daysOfWeek,omitempty"`
	FirstDayOfWeek string   `json:"firstDayOfWeek,omitempty"`
	Index          string   `json:"index,omitempty"`
}

// RecurrenceRange is a recurrenceRange.
type RecurrenceRange struct {
	Type                string `json:"type"` // endDate, noEnd, numbered
	StartDate           string `json:"startDate"`
	EndDate             string `json:"endDate,omitempty"`
	NumberOfOccurrences int    `json:"numberOfOccurrences,omitempty"`
	RecurrenceTimeZone  string `json:"recurrenceTimeZone,omitempty"`
}

package gdpr

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/module"
)

// DiscoveryOptions select what an eDiscovery export writes.
type DiscoveryOptions struct {
	People   []string  // bare JIDs of users (or rooms) whose archives are searched
	From, To time.Time // inclusive bounds on message time; zero for none
	// Contains keeps only messages whose decrypted body contains this
	// text (case-insensitive); "" keeps all.
	Contains string
	// OutDir receives messages/OWNER/PEER/DATE.eml, index.csv,
	// manifest.json and manifest.sha256, and progress.json while it runs.
	OutDir string
	Batch  int // archive page size; default 1000
}

// DiscoveryResult counts what was written.
type DiscoveryResult struct {
	Files, Messages int
	Resumed         bool
}

// discoveryProgress is progress.json: per person, the last day whose files
// are complete, and the length of index.csv at that point.
type discoveryProgress struct {
	Query  string                    `json:"query"` // the options it belongs to
	People map[string]progressPerson `json:"people"`
}

type progressPerson struct {
	Done     bool   `json:"done"`
	LastDay  string `json:"last_day,omitempty"`
	IndexLen int64  `json:"index_len"`
	Files    int    `json:"files"`
	Messages int    `json:"messages"`
}

// Discover writes the archives of opts.People as RFC 5322 messages, one
// per conversation and day, with a CSV index and a manifest of hashes. It
// streams: one person's archive is read page by page and one day of it is
// held at a time. Interrupted, it resumes from the last complete day when
// run again with the same options and directory. Access control and
// auditing are the caller's (one access decision per person).
func (t *Tool) Discover(ctx context.Context, opts DiscoveryOptions) (DiscoveryResult, error) {
	var res DiscoveryResult
	if t.Archive == nil {
		return res, errors.New("gdpr: ediscovery: the archive is off")
	}
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	if err := os.MkdirAll(opts.OutDir, 0o700); err != nil {
		return res, err
	}
	query := fmt.Sprintf("%q %s %s %q", opts.People, opts.From.Format(time.RFC3339), opts.To.Format(time.RFC3339), opts.Contains)
	progPath := filepath.Join(opts.OutDir, "progress.json")
	prog := discoveryProgress{Query: query, People: map[string]progressPerson{}}
	if b, err := os.ReadFile(progPath); err == nil {
		var old discoveryProgress
		if err := json.Unmarshal(b, &old); err != nil {
			return res, fmt.Errorf("gdpr: ediscovery: %s: %w", progPath, err)
		}
		if old.Query != query {
			return res, fmt.Errorf("gdpr: ediscovery: %s holds an export with other options; use another directory", opts.OutDir)
		}
		prog, res.Resumed = old, true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, err
	} else if entries, _ := os.ReadDir(opts.OutDir); len(entries) > 0 {
		return res, fmt.Errorf("gdpr: ediscovery: %s is not empty and holds no progress.json", opts.OutDir)
	}
	saveProg := func() error {
		b, err := json.Marshal(prog)
		if err != nil {
			return err
		}
		tmp := progPath + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, progPath)
	}
	indexPath := filepath.Join(opts.OutDir, "index.csv")
	var indexLen int64
	for _, p := range prog.People {
		indexLen = max(indexLen, p.IndexLen)
	}
	idx, err := os.OpenFile(indexPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return res, err
	}
	defer idx.Close()
	if err := idx.Truncate(indexLen); err != nil { // drop rows of a day not completed
		return res, err
	}
	if _, err := idx.Seek(indexLen, io.SeekStart); err != nil {
		return res, err
	}
	cw := csv.NewWriter(idx)
	if indexLen == 0 {
		cw.Write([]string{"file", "owner", "peer", "date", "messages", "first", "last", "sha256"})
		cw.Flush()
		if err := cw.Error(); err != nil {
			return res, err
		}
	}
	needle := strings.ToLower(opts.Contains)
	for _, owner := range opts.People {
		pp := prog.People[owner]
		if pp.Done {
			res.Files += pp.Files
			res.Messages += pp.Messages
			continue
		}
		start := opts.From
		if pp.LastDay != "" {
			d, _ := time.Parse(time.DateOnly, pp.LastDay)
			start = d.AddDate(0, 0, 1)
		}
		day := ""
		convs := map[string][]module.ArchivedMessage{} // peer → the day's messages
		flush := func() error {
			if day == "" {
				return nil
			}
			for _, peer := range sortedKeys(convs) {
				ms := convs[peer]
				rel := filepath.Join("messages", safeName(owner), safeName(peer), day+".eml")
				sum, err := writeEML(filepath.Join(opts.OutDir, rel), owner, peer, day, ms)
				if err != nil {
					return err
				}
				cw.Write([]string{filepath.ToSlash(rel), owner, peer, day, strconv.Itoa(len(ms)),
					ms[0].Time.UTC().Format(time.RFC3339), ms[len(ms)-1].Time.UTC().Format(time.RFC3339), sum})
				pp.Files++
				pp.Messages += len(ms)
			}
			cw.Flush()
			if err := cw.Error(); err != nil {
				return err
			}
			if err := idx.Sync(); err != nil {
				return err
			}
			off, err := idx.Seek(0, io.SeekCurrent)
			if err != nil {
				return err
			}
			pp.LastDay, pp.IndexLen = day, off
			prog.People[owner] = pp
			clear(convs)
			t.progress("ediscovery %s: %s done (%d files, %d messages)", owner, day, pp.Files, pp.Messages)
			return saveProg()
		}
		// Restricted messages (Art. 18) are what a hold keeps for exactly
		// this: they are included, and marked.
		err := t.Archive.WalkRestricted(ctx, owner, start, opts.To, opts.Batch, func(ms []module.ArchivedMessage) error {
			for _, m := range ms {
				if !start.IsZero() && m.Time.Before(start) {
					continue
				}
				if needle != "" && !strings.Contains(strings.ToLower(bodyOf(m.Stanza)), needle) {
					continue
				}
				d := m.Time.UTC().Format(time.DateOnly)
				if d != day {
					if err := flush(); err != nil {
						return err
					}
					day = d
				}
				peer, _, _ := strings.Cut(m.With, "/")
				m.Stanza = slices.Clone(m.Stanza)
				convs[peer] = append(convs[peer], m)
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return res, fmt.Errorf("gdpr: ediscovery %s: %w", owner, err)
		}
		pp.Done = true
		pp.IndexLen, _ = idx.Seek(0, io.SeekCurrent)
		prog.People[owner] = pp
		if err := saveProg(); err != nil {
			return res, err
		}
		res.Files += pp.Files
		res.Messages += pp.Messages
	}
	if err := writeDiscoveryManifest(opts.OutDir); err != nil {
		return res, err
	}
	return res, nil
}

// bodyOf returns a stanza's body text ("" when it has none or is not
// readable).
func bodyOf(raw []byte) string {
	el, err := parseStanza(raw)
	if err != nil {
		return ""
	}
	return el
}

// safeName makes a JID usable as one path element.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// writeEML writes one conversation-day as an RFC 5322 message with a
// quoted-printable text/plain body, and returns its SHA-256.
func writeEML(path, owner, peer, day string, ms []module.ArchivedMessage) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(f, h))
	first := ms[0].Time.UTC()
	sum := sha256.Sum256([]byte(owner + "\x00" + peer + "\x00" + day))
	hdr := func(k, v string) { fmt.Fprintf(bw, "%s: %s\r\n", k, v) }
	hdr("From", address(owner))
	hdr("To", address(peer))
	hdr("Date", first.Format(time.RFC1123Z))
	hdr("Subject", mime.QEncoding.Encode("utf-8", "Chat "+owner+" / "+peer+" "+day))
	hdr("Message-ID", "<"+hex.EncodeToString(sum[:12])+"@ediscovery.kontor.invalid>")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("X-Kontor-Owner", owner)
	hdr("X-Kontor-Messages", strconv.Itoa(len(ms)))
	restricted := 0
	for _, m := range ms {
		if m.Restricted {
			restricted++
		}
	}
	if restricted > 0 {
		hdr("X-Kontor-Restricted", strconv.Itoa(restricted)+" (GDPR Art. 18: kept by an erasure; do not process beyond the hold's purpose)")
	}
	bw.WriteString("\r\n")
	qp := quotedprintable.NewWriter(bw)
	for _, m := range ms {
		from, to := peer, owner
		if m.Outgoing {
			from, to = owner, peer
		}
		body := bodyOf(m.Stanza)
		if m.Encrypted && body == "" {
			body = "(end-to-end encrypted)"
		}
		mark := ""
		if m.Restricted {
			mark = ", restricted"
		}
		fmt.Fprintf(qp, "[%s] %s -> %s (id %s%s):\r\n%s\r\n\r\n", m.Time.UTC().Format("15:04:05"), from, to, m.ID, mark,
			strings.ReplaceAll(body, "\n", "\r\n"))
	}
	if err := qp.Close(); err != nil {
		f.Close()
		return "", err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// address is a JID as an RFC 5322 address (RFC 6532 allows UTF-8).
func address(j string) string {
	if strings.ContainsAny(j, " \"(),:;<>@[\\]") && strings.Count(j, "@") != 1 {
		return mime.QEncoding.Encode("utf-8", j) + " <undisclosed-recipients@kontor.invalid>"
	}
	if !strings.Contains(j, "@") {
		return "<" + j + "@room.kontor.invalid>"
	}
	return "<" + j + ">"
}

// writeDiscoveryManifest hashes every file of the set into manifest.json
// and manifest.sha256 (sha256sum's format).
func writeDiscoveryManifest(dir string) error {
	m := Manifest{Schema: "urn:kontor:ediscovery:1", Generated: time.Now().UTC()}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if rel == "progress.json" || strings.HasPrefix(rel, "manifest.") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, ManifestFile{Name: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	if err != nil {
		return err
	}
	var sums strings.Builder
	for _, f := range m.Files {
		fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Name)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.sha256"), []byte(sums.String()), 0o600); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), append(b, '\n'), 0o600)
}

// Package upload implements XEP-0363 HTTP File Upload: a client asks the
// host for a slot (an IQ with the file's name, size and type) and gets a
// PUT URL to upload the file to and a GET URL to share; both are served on
// the server's HTTPS listener (module.Host.HandleHTTP) under /upload/.
//
// URLs carry the file's id (128 random bits) and a token, an HMAC-SHA-256
// of the id under a server secret (kept with the keys, DATA_DIR/keys/
// upload.key by default), truncated to 128 bits and different for PUT and
// GET; tokens are compared in constant time. A PUT works once, before the
// slot expires (slot_timeout), with exactly the announced size and type.
// Whoever holds the GET URL may download the file until its retention
// ends; after that, and after the purge or the owner's erasure deleted it,
// it is a 404.
//
// # Policy
//
// Each slot request asks the policy's upload.request decision
// (gate.UploadDecider, which cmd/kontor's policy engine implements; the
// module asserts it of the Decider SetDecider gives it): may this user
// upload this file, within which limits, and until when is it kept. A
// refusal is not-allowed with the policy's message and reason as text and
// the decision as application condition (core/gate); without a policy
// engine every request is refused (fail closed). The policy's max_size and
// content_types narrow the module's options, never widen them. The file's
// retention is the decision's: the retention class and deletion date of
// the longest applicable rule, counted from the slot, as for a message;
// the class is stored with the record. When the policy names no rule, the
// retention option is the period. The purge deletes a file when its
// retention ends.
//
// Files are encrypted at rest with the uploader's keys: the content is cut
// into chunks, each sealed with module.Host.Sealer for the uploader (the
// archive's per-owner envelope encryption when the archive is on, so that
// erasing the owner's keys crypto-shreds their uploads too), so that a
// Range request opens only the chunks it needs. The file name is sealed
// too; the size, content type, times and the uploader's JID are in the
// clear in the database (storage.Uploads), as they are needed to enforce
// quotas and retention.
//
// GET is served by net/http's ServeContent over a decrypting
// io.ReadSeeker, which gives single and multiple ranges (206, 416),
// If-Range, ETag, conditional requests and HEAD exactly as net/http does
// them, rather than with a range parser of our own.
//
// Limits (all options): max_file_size, content_types, quota_bytes per
// user (granted slots count, used or not), slots_per_minute per user.
// Files is the Go API (list, open, delete all of an owner) for export and
// erasure.
package upload

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"kontor.im/kontor/core/dataform"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// NS is the XEP-0363 namespace.
const NS = "urn:xmpp:http:upload:0"

// ID is the module's ID and config key.
const ID = "upload"

// PathPrefix is where the module serves its URLs on the HTTPS listener.
const PathPrefix = "/upload/"

func init() {
	module.Register(module.Info{
		ID:          ID,
		Description: "HTTP File Upload: slots for files served on the HTTPS listener, encrypted at rest with the uploader's keys, downloadable while retention allows",
		Specs: []module.Spec{{ID: "XEP-0363", Name: "HTTP File Upload", Version: "1.1.0", Status: module.Complete,
			Note: "served on the host's JID; each slot asks the policy (upload.request: who, size, types, retention class)"}},
		New: func() module.Module { return newModule() },
	})
}

// Options are the module's options.
type Options struct {
	// Dir holds the encrypted files; default DATA_DIR/uploads.
	Dir string `mapstructure:"dir"`
	// SecretFile holds the server secret of the URL tokens (32 bytes,
	// generated if missing); default DATA_DIR/keys/upload.key.
	SecretFile string `mapstructure:"secret_file"`
	// MaxFileSize is the largest file in bytes.
	MaxFileSize int64 `mapstructure:"max_file_size"`
	// ContentTypes allowed ("image/*" allows every image type); empty:
	// all.
	ContentTypes []string `mapstructure:"content_types"`
	// QuotaBytes is what one user's files may total; 0: no quota.
	QuotaBytes int64 `mapstructure:"quota_bytes"`
	// SlotsPerMinute one user may request; 0: no limit.
	SlotsPerMinute int `mapstructure:"slots_per_minute"`
	// SlotTimeout is how long a PUT URL works.
	SlotTimeout time.Duration `mapstructure:"slot_timeout"`
	// Retention is how long a file may be downloaded when the policy's
	// upload decision names no retention rule; 0 keeps it.
	Retention time.Duration `mapstructure:"retention"`
	// PurgeInterval is how often expired files are deleted.
	PurgeInterval time.Duration `mapstructure:"purge_interval"`
	// ChunkSize is the plaintext size of one sealed chunk.
	ChunkSize int `mapstructure:"chunk_size"`
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []string
	if o.MaxFileSize <= 0 {
		errs = append(errs, "max_file_size must be positive")
	}
	if o.QuotaBytes < 0 || o.SlotsPerMinute < 0 || o.Retention < 0 {
		errs = append(errs, "quota_bytes, slots_per_minute and retention must not be negative")
	}
	if o.SlotTimeout < time.Second {
		errs = append(errs, "slot_timeout must be at least 1s")
	}
	if o.PurgeInterval < time.Second {
		errs = append(errs, "purge_interval must be at least 1s")
	}
	if o.ChunkSize < 1024 || o.ChunkSize > 16<<20 {
		errs = append(errs, "chunk_size must be between 1024 and 16777216")
	}
	for _, ct := range o.ContentTypes {
		if !validContentType(ct) && !strings.HasSuffix(ct, "/*") {
			errs = append(errs, fmt.Sprintf("content_types: %q is not a media type", ct))
		}
	}
	if len(errs) > 0 {
		return errors.New("upload: " + strings.Join(errs, "; "))
	}
	return nil
}

// Module is the upload service of one virtual host.
type Module struct {
	opts    Options
	dataDir string
	h       module.Host
	log     *slog.Logger
	files   *Files
	secret  []byte
	now     func() time.Time
	decider gate.UploadDecider // nil: every slot request is refused

	rateMu sync.Mutex
	rate   map[string]*window // per owner; guarded by rateMu
}

type window struct {
	start time.Time
	n     int
}

func newModule() *Module {
	return &Module{opts: Options{
		MaxFileSize:    100 << 20,
		QuotaBytes:     1 << 30,
		SlotsPerMinute: 10,
		SlotTimeout:    5 * time.Minute,
		Retention:      90 * 24 * time.Hour,
		PurgeInterval:  10 * time.Minute,
		ChunkSize:      DefaultChunkSize,
	}, now: time.Now, rate: map[string]*window{}}
}

var (
	_ module.Configurable = (*Module)(nil)
	_ module.Validator    = (*Options)(nil)
)

// Options returns the module's options, filled with defaults.
func (m *Module) Options() any { return &m.opts }

// SetDecider gives the module its policy engine (cmd/kontor calls it
// before Provision). A Decider that does not answer upload.request
// (gate.UploadDecider) counts as none: slot requests are refused.
func (m *Module) SetDecider(d gate.Decider) {
	m.decider, _ = d.(gate.UploadDecider)
}

// SetDataDir gives the module the server's data directory, where its
// files and secret go unless configured elsewhere. cmd/kontor calls it
// before Provision.
func (m *Module) SetDataDir(dir string) { m.dataDir = dir }

// Files returns the module's file store (after Provision).
func (m *Module) Files() *Files { return m.files }

// Provision loads the secret and declares the IQ handler, the HTTP
// handler, the disco information and the purge goroutine.
func (m *Module) Provision(h module.Host) error {
	m.h, m.log = h, h.Logger()
	st, ok := h.Store().(storage.Uploads)
	if !ok {
		return fmt.Errorf("upload: the %s store does not keep uploads", h.Store().Backend())
	}
	dir, secretFile := m.opts.Dir, m.opts.SecretFile
	if dir == "" && m.dataDir != "" {
		dir = filepath.Join(m.dataDir, "uploads")
	}
	if secretFile == "" && m.dataDir != "" {
		secretFile = filepath.Join(m.dataDir, "keys", "upload.key")
	}
	if dir == "" || secretFile == "" {
		return errors.New("upload: dir and secret_file are needed (no data directory is known)")
	}
	secret, err := seal.LoadOrCreateKey(secretFile)
	if err != nil {
		return fmt.Errorf("upload: secret: %w", err)
	}
	m.secret = secret
	if m.decider == nil {
		m.log.Warn("no policy engine that decides uploads: every slot request is refused")
	}
	m.files = &Files{Store: st, Sealer: h.Sealer(), Dir: dir, ChunkSize: m.opts.ChunkSize, Now: m.now}

	h.HandleIQ(module.ToHost, module.Get, stanza.Name{Space: NS, Local: "request"}, m.request)
	h.HandleHTTP(PathPrefix, &handler{m: m})
	if h.HTTPBaseURL() == "" {
		// Nothing to announce: slot requests are answered with
		// service-unavailable until a listener exists.
		m.log.Warn("the HTTPS listener is off: uploads are not offered")
		h.Go("upload-purge", m.purgeLoop)
		return nil
	}
	form := dataform.New(dataform.TypeResult, NS, dataform.Field{Var: "max-file-size",
		Values: []string{strconv.FormatInt(m.opts.MaxFileSize, 10)}})
	h.AddDisco(module.ToHost, module.Disco{
		Identities: []module.Identity{{Category: "store", Type: "file", Name: "HTTP File Upload"}},
		Features:   []string{NS},
		Forms:      []*stanza.Element{form.Element()},
	})
	h.Go("upload-purge", m.purgeLoop)
	return nil
}

// Request is a parsed slot request.
type Request struct {
	Filename    string
	Size        int64
	ContentType string
}

// ParseRequest reads a <request xmlns='urn:xmpp:http:upload:0'/>.
func ParseRequest(el *stanza.Element) (Request, error) {
	if el == nil || el.Name.Space != NS || el.Name.Local != "request" {
		return Request{}, stanza.ErrBadRequest("expected an upload request")
	}
	r := Request{Filename: el.Get("filename"), ContentType: el.Get("content-type")}
	if !validFilename(r.Filename) {
		return Request{}, stanza.ErrBadRequest("the filename is missing or not allowed")
	}
	size, err := strconv.ParseInt(el.Get("size"), 10, 64)
	if err != nil || size < 0 {
		return Request{}, stanza.ErrBadRequest("the size must be a non-negative integer")
	}
	r.Size = size
	if r.ContentType == "" {
		r.ContentType = "application/octet-stream"
	}
	r.ContentType = strings.ToLower(r.ContentType)
	if !validContentType(r.ContentType) {
		return Request{}, stanza.ErrBadRequest("the content-type is not a media type")
	}
	return r, nil
}

// validFilename accepts a name of 1 to 255 bytes of UTF-8 without path
// separators, control characters, "." or "..".
func validFilename(s string) bool {
	if s == "" || len(s) > 255 || s == "." || s == ".." || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '/' || r == '\\' || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validContentType accepts type/subtype of RFC 6838 token characters,
// without parameters.
func validContentType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && isToken(typ) && isToken(sub) && len(s) <= 127
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&-^_.+", c) >= 0) {
			return false
		}
	}
	return true
}

// typeAllowed reports whether ct is in the module's list and in the
// policy's (an empty list allows every type).
func (m *Module) typeAllowed(ct string, policy []string) bool {
	return typeIn(ct, m.opts.ContentTypes) && typeIn(ct, policy)
}

func typeIn(ct string, list []string) bool {
	if len(list) == 0 {
		return true
	}
	for _, a := range list {
		a = strings.ToLower(a)
		if a == ct || (strings.HasSuffix(a, "/*") && strings.HasPrefix(ct, a[:len(a)-1])) {
			return true
		}
	}
	return false
}

// allowSlot counts a slot against owner's rate and reports when the next
// one is allowed if it is not.
func (m *Module) allowSlot(owner string, now time.Time) (bool, time.Time) {
	if m.opts.SlotsPerMinute <= 0 {
		return true, time.Time{}
	}
	m.rateMu.Lock()
	defer m.rateMu.Unlock()
	w := m.rate[owner]
	if w == nil || now.Sub(w.start) >= time.Minute {
		if len(m.rate) >= 10000 {
			for k, v := range m.rate {
				if now.Sub(v.start) >= time.Minute {
					delete(m.rate, k)
				}
			}
		}
		w = &window{start: now}
		m.rate[owner] = w
	}
	if w.n >= m.opts.SlotsPerMinute {
		return false, w.start.Add(time.Minute)
	}
	w.n++
	return true, time.Time{}
}

// token is the URL token of a file for a method ("put" or "get").
func (m *Module) token(method, id string) string {
	mac := hmac.New(sha256.New, m.secret)
	mac.Write([]byte("kontor-upload/" + method + "/" + id))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

func (m *Module) validToken(method, id, tok string) bool {
	return hmac.Equal([]byte(m.token(method, id)), []byte(tok))
}

func (m *Module) request(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	if iq.Origin == nil || iq.From.Local() == "" || !m.h.IsLocal(iq.From.Domain()) {
		return nil, stanza.ErrForbidden("only local users may upload files")
	}
	req, err := ParseRequest(iq.Payload())
	if err != nil {
		return nil, err
	}
	base := m.h.HTTPBaseURL()
	if base == "" {
		return nil, stanza.ErrServiceUnavailable("the server has no HTTPS listener")
	}
	owner := iq.From.Bare().String()
	now := m.now().UTC()
	d, err := m.decide(ctx, owner, req, now)
	if err != nil {
		return nil, err
	}
	maxSize := m.opts.MaxFileSize
	if d.MaxSize > 0 && d.MaxSize < maxSize {
		maxSize = d.MaxSize
	}
	if req.Size > maxSize {
		app := stanza.New(NS, "file-too-large").Append(
			stanza.New(NS, "max-file-size").SetText(strconv.FormatInt(maxSize, 10)))
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: fmt.Sprintf("The file is too large: at most %d bytes.", maxSize), App: app}
	}
	if !m.typeAllowed(req.ContentType, d.ContentTypes) {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: "Files of type " + req.ContentType + " may not be uploaded here."}
	}
	if ok, retry := m.allowSlot(owner, now); !ok {
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: "Too many upload requests; try again later.",
			App:  stanza.New(NS, "retry").Set("stamp", retry.Format(time.RFC3339))}
	}
	id := newID()
	sealedName, err := m.files.Sealer.Seal(owner, nameID(id), []byte(req.Filename))
	if err != nil {
		return nil, err
	}
	u := storage.Upload{ID: id, Owner: owner, Name: sealedName, Size: req.Size, ContentType: req.ContentType,
		Created: now, SlotExpires: now.Add(m.opts.SlotTimeout), Class: d.Class, Until: d.Until}
	if d.Class == "" && m.opts.Retention > 0 {
		u.Until = now.Add(m.opts.Retention)
	}
	if err := m.files.Store.CreateUpload(ctx, u, m.opts.QuotaBytes); err != nil {
		if errors.Is(err, storage.ErrQuotaExceeded) {
			return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
				Text: fmt.Sprintf("Your files would exceed your quota of %d bytes.", m.opts.QuotaBytes)}
		}
		return nil, err
	}
	escaped := url.PathEscape(req.Filename)
	slot := stanza.New(NS, "slot").Append(
		stanza.New(NS, "put").Set("url", base+PathPrefix+id+"/"+m.token("put", id)+"/"+escaped),
		stanza.New(NS, "get").Set("url", base+PathPrefix+id+"/"+m.token("get", id)+"/"+escaped),
	)
	return slot, nil
}

// decide asks the upload.request decision; a refusal is the error for the
// client: not-allowed (wait for a timeout) with the policy's message and
// reason code as text and the decision as application condition.
func (m *Module) decide(ctx context.Context, owner string, req Request, now time.Time) (gate.UploadDecision, error) {
	var d gate.UploadDecision
	if m.decider != nil {
		d = m.decider.Upload(ctx, gate.UploadInput{From: gate.Party{JID: owner, Local: true},
			Size: req.Size, ContentType: req.ContentType, At: now})
	} else {
		d.Decision = gate.Failed(gate.ReasonUnavailable,
			"The server has no policy engine for uploads, so it refuses rather than skip the policy check. Tell your administrator.", nil)
	}
	if d.Allow {
		return d, nil
	}
	m.log.InfoContext(ctx, "upload refused by policy", "decision", d.ID, "reason", d.Reason, "err", d.Err)
	se := d.StanzaError()
	se.Condition = stanza.NotAllowed
	return d, se
}

// purgeLoop deletes expired files every PurgeInterval.
func (m *Module) purgeLoop(ctx context.Context) {
	t := time.NewTicker(m.opts.PurgeInterval)
	defer t.Stop()
	for {
		if n, err := m.Purge(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("purge of expired uploads failed", "err", err)
		} else if n > 0 {
			m.log.Info("purged expired uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Purge deletes the files whose retention has passed and the slots never
// used, and returns how many.
func (m *Module) Purge(ctx context.Context) (int, error) {
	total := 0
	for {
		us, err := m.files.Store.ExpiredUploads(ctx, m.now(), 100)
		if err != nil {
			return total, err
		}
		for _, u := range us {
			if err := m.files.Delete(ctx, u.ID); err != nil {
				return total, err
			}
			total++
		}
		if len(us) < 100 {
			return total, nil
		}
	}
}

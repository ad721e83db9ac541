package upload

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"kontor.im/kontor/core/storage"
)

// handler serves PUT, GET and HEAD on /upload/ID/TOKEN/NAME.
type handler struct{ m *Module }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	id, rest, _ := strings.Cut(rest, "/")
	tok, _, _ := strings.Cut(rest, "/")
	if len(id) != 32 || tok == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch r.Method {
	case http.MethodPut:
		h.put(w, r, id, tok)
	case http.MethodGet, http.MethodHead:
		h.get(w, r, id, tok)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (h *handler) put(w http.ResponseWriter, r *http.Request, id, tok string) {
	m := h.m
	if !m.validToken("put", id, tok) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	ctx := r.Context()
	u, err := m.files.Store.Upload(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		http.Error(w, "no such slot", http.StatusNotFound)
		return
	}
	if err != nil {
		h.internal(w, r, "read the slot", err)
		return
	}
	now := m.now()
	if !u.Stored.IsZero() {
		http.Error(w, "the file was already uploaded", http.StatusConflict)
		return
	}
	if !now.Before(u.SlotExpires) {
		http.Error(w, "the slot expired", http.StatusForbidden)
		return
	}
	if r.ContentLength != u.Size {
		http.Error(w, "Content-Length must be the size of the slot", http.StatusBadRequest)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !strings.EqualFold(mt, u.ContentType) {
			http.Error(w, "Content-Type must be the type of the slot", http.StatusBadRequest)
			return
		}
	}
	body := http.MaxBytesReader(w, r.Body, u.Size+1)
	if err := m.files.write(u, body); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.Is(err, errSize) || errors.As(err, &tooBig):
			http.Error(w, "the content is not of the size of the slot", http.StatusBadRequest)
		case errors.Is(err, errExists):
			http.Error(w, "the file was already uploaded", http.StatusConflict)
		default:
			h.internal(w, r, "store the file", err)
		}
		return
	}
	if err := m.files.Store.CompleteUpload(ctx, id, now.UTC()); err != nil {
		_ = m.files.Delete(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			http.Error(w, "the slot is gone", http.StatusConflict)
			return
		}
		h.internal(w, r, "complete the upload", err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request, id, tok string) {
	m := h.m
	// A wrong token and a missing file look the same.
	if !m.validToken("get", id, tok) {
		http.NotFound(w, r)
		return
	}
	fi, err := m.files.Lookup(r.Context(), id, m.now())
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.internal(w, r, "look up the file", err)
		return
	}
	rd, err := m.files.Open(fi)
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.internal(w, r, "open the file", err)
		return
	}
	defer rd.Close()
	hd := w.Header()
	hd.Set("Content-Type", fi.ContentType)
	hd.Set("ETag", `"`+fi.ID+`"`)
	disp := "attachment"
	if inline(fi.ContentType) {
		disp = "inline"
	}
	hd.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": fi.Name}))
	hd.Set("Cache-Control", "private, max-age="+strconv.FormatInt(maxAge(fi, m.now()), 10))
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(w, r, "", fi.Stored, rd)
}

// maxAge is how long a client may cache the file: until it expires.
func maxAge(fi File, now time.Time) int64 {
	if fi.Until.IsZero() {
		return 86400
	}
	return max(0, min(86400, int64(fi.Until.Sub(now)/time.Second)))
}

// inline types are shown in the browser; everything else downloads.
func inline(ct string) bool {
	switch ct {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4", "video/webm",
		"audio/mpeg", "audio/ogg", "audio/mp4", "audio/webm", "text/plain":
		return true
	}
	return false
}

func (h *handler) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() != nil {
		return
	}
	h.m.log.Error("upload: could not "+what, "err", err)
	http.Error(w, "internal server error", http.StatusInternalServerError)
}

var _ io.ReadSeeker = (*Reader)(nil)

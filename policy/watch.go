package policy

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDelay gathers the events of one save (editors write a temporary
// file, rename it, change its mode) into one reload.
const reloadDelay = 200 * time.Millisecond

// watcher reloads the engine when a .rego file in its directory changes.
// fsnotify (already in the build through viper) gives inotify on Linux
// without polling; the directory is watched rather than the files, so that
// files replaced by rename (editors, Kubernetes ConfigMaps) are seen.
type watcher struct {
	w    *fsnotify.Watcher
	done chan struct{}
	once sync.Once
}

func startWatcher(e *Engine, dir string) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := fw.Add(dir); err != nil {
		fw.Close()
		return nil, err
	}
	w := &watcher{w: fw, done: make(chan struct{})}
	go w.run(e)
	return w, nil
}

func (w *watcher) run(e *Engine) {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			name := filepath.Base(ev.Name)
			// Kubernetes swaps ConfigMap contents through "..data" links.
			if strings.HasSuffix(name, ".rego") || strings.HasPrefix(name, "..") {
				timer.Reset(reloadDelay)
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			e.log.Error("policy directory watch failed", "err", err)
		case <-timer.C:
			// Errors are logged and kept for Status by Reload.
			_ = e.Reload(context.Background(), "system")
		}
	}
}

func (w *watcher) stop() {
	w.once.Do(func() {
		w.w.Close()
		<-w.done
	})
}

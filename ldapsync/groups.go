package ldapsync

import (
	"slices"
	"sort"
)

// resolution is the outcome of resolving nested groups: every group's
// members with nesting flattened, and the cycles found on the way.
type resolution struct {
	// flat maps a group's stable id to the stable ids of every user in it,
	// directly, through nested groups, or through primaryGroupID; sorted.
	flat map[string][]string
	// cycles lists the groups of each cycle (by name, sorted); members of
	// a cycle all have the union of the cycle's members.
	cycles [][]string
	// unresolved counts member DNs that are neither a known user nor a
	// known group (computers, contacts, users outside the base DN).
	unresolved int
}

// resolveGroups flattens nested groups. Memberships form a directed graph
// (group → member group) that may have cycles, which Active Directory and
// OpenLDAP both allow: its strongly connected components (Tarjan's
// algorithm) are the cycles, and each component's members are its own
// direct users plus those of every component it reaches. Every group is
// visited once, whatever the nesting depth.
//
// userByDN maps user DN keys (dnKey) to user stable ids; usersByRID maps
// an Active Directory primary group's RID to the users whose
// primaryGroupID it is, since that membership is not in member.
func resolveGroups(groups map[string]*group, userByDN map[string]string, usersByRID map[uint32][]string, keys dnKeys) resolution {
	res := resolution{flat: make(map[string][]string, len(groups))}
	groupByDN := make(map[string]string, len(groups))
	ids := make([]string, 0, len(groups))
	for id, g := range groups {
		groupByDN[g.DNKey] = id
		ids = append(ids, id)
	}
	sort.Strings(ids) // deterministic component order and cycle reports

	// Direct users and direct subgroups of each group.
	users := make(map[string][]string, len(groups))
	subs := make(map[string][]string, len(groups))
	for _, id := range ids {
		g := groups[id]
		for _, m := range g.Members {
			k, err := keys.key(m)
			if err != nil {
				res.unresolved++
				continue
			}
			if u, ok := userByDN[k]; ok {
				users[id] = append(users[id], u)
			} else if sg, ok := groupByDN[k]; ok {
				subs[id] = append(subs[id], sg)
			} else {
				res.unresolved++
			}
		}
		if g.RID != 0 {
			users[id] = append(users[id], usersByRID[g.RID]...)
		}
	}

	// Tarjan's strongly connected components.
	var (
		index   = make(map[string]int, len(ids))
		low     = make(map[string]int, len(ids))
		onStack = make(map[string]bool, len(ids))
		stack   []string
		next    int
		comp    = make(map[string]int, len(ids)) // group → component number
		comps   [][]string                       // in reverse topological order
	)
	var connect func(v string)
	connect = func(v string) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range subs[v] {
			if _, seen := index[w]; !seen {
				connect(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var c []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp[w] = len(comps)
				c = append(c, w)
				if w == v {
					break
				}
			}
			comps = append(comps, c)
		}
	}
	for _, id := range ids {
		if _, seen := index[id]; !seen {
			connect(id)
		}
	}

	// Tarjan emits a component only after every component it reaches, so
	// one pass in emission order sees successors first.
	members := make([]map[string]struct{}, len(comps))
	for ci, c := range comps {
		set := map[string]struct{}{}
		cyclic := len(c) > 1
		for _, g := range c {
			for _, u := range users[g] {
				set[u] = struct{}{}
			}
			for _, sg := range subs[g] {
				if sg == g {
					cyclic = true // a group that contains itself
				}
				if sc := comp[sg]; sc != ci {
					for u := range members[sc] {
						set[u] = struct{}{}
					}
				}
			}
		}
		members[ci] = set
		if cyclic {
			names := make([]string, 0, len(c))
			for _, g := range c {
				names = append(names, groups[g].Name)
			}
			slices.Sort(names)
			res.cycles = append(res.cycles, names)
		}
	}
	for _, id := range ids {
		set := members[comp[id]]
		list := make([]string, 0, len(set))
		for u := range set {
			list = append(list, u)
		}
		slices.Sort(list)
		res.flat[id] = list
	}
	return res
}

/* list.c — `mbx list` past one page: asks page after page (the server sends at most
 * 1,000 items a page, the cache its own page size) until the limit or the end of the
 * folder, and notices a folder that changed under the listing. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Keeps page (ownership passes to l) and its items from skip on, up to want items. */
static int listing_add(struct mbxcli_listing *l, Mbx__ListResp *page, size_t skip, size_t want)
{
  Mbx__ListResp **pages = realloc(l->pages, (l->npages + 1) * sizeof(*pages));
  if (!pages) {
    mbxc_free(&page);
    return MBX_ENOMEM;
  }
  l->pages = pages;
  l->pages[l->npages++] = page;
  size_t n = page->n_items > skip ? page->n_items - skip : 0;
  if (n > want)
    n = want;
  if (n == 0)
    return 0;
  Mbx__Item **items = realloc(l->view.items, (l->view.n_items + n) * sizeof(*items));
  if (!items)
    return MBX_ENOMEM;
  memcpy(items + l->view.n_items, page->items + skip, n * sizeof(*items));
  l->view.items = items;
  l->view.n_items += n;
  return 0;
}

/* Where the last item listed so far sits in page, so that what comes before it (items
 * pushed down by arrivals at the top of the folder) is not listed twice; 0 when it is
 * not there. */
static size_t listing_skip(const struct mbxcli_listing *l, const Mbx__ListResp *page)
{
  if (l->view.n_items == 0)
    return 0;
  uint64_t last = l->view.items[l->view.n_items - 1]->id;
  for (size_t i = 0; i < page->n_items; i++)
    if (page->items[i]->id == last)
      return i + 1;
  return 0;
}

int mbxcli_list_all(mbxcli_list_page_fn fetch, void *arg, uint32_t offset, uint32_t limit,
                    struct mbxcli_listing *l)
{
  memset(l, 0, sizeof(*l));
  mbx__list_resp__init(&l->view);
  uint64_t at = offset; /* the next page's offset */
  bool first = true;
  while (first || l->view.n_items < limit) {
    uint32_t ask = limit ? limit - (uint32_t)l->view.n_items : 0; /* 0: the server's default */
    Mbx__ListResp *page = NULL;
    int rc = fetch(arg, (uint32_t)at, ask, &page);
    if (rc < 0)
      return rc;
    size_t skip = 0;
    if (first) {
      l->first_total = page->total;
    } else if (page->total != l->view.total) {
      l->changed = true;
      skip = listing_skip(l, page);
    }
    l->view.has_total = page->has_total;
    l->view.total = page->total;
    size_t got = page->n_items;
    rc = listing_add(l, page, skip, limit ? limit - l->view.n_items : got);
    if (rc < 0)
      return rc;
    first = false;
    at += got;
    if (limit == 0 || got == 0 || (page->has_total && at >= page->total) || at > UINT32_MAX)
      break;
  }
  return 0;
}

void mbxcli_listing_free(struct mbxcli_listing *l)
{
  for (size_t i = 0; i < l->npages; i++)
    mbxc_free(&l->pages[i]);
  free(l->pages);
  free(l->view.items);
  memset(l, 0, sizeof(*l));
}

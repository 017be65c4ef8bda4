// SSL certificates: #/certificates lists the project's domains with what the edge serves for
// each (issue, upload, renewal notifications); #/certificates/<domain> shows one in detail.
import { html } from "../ui.js";
import CertificateList from "./certificates_list.js";
import CertificateDetails from "./certificates_details.js";

export default function Certificates({ path, query }) {
  const domain = path && path[0];
  const from = (query && query.get("from")) || "";
  return domain
    ? html`<${CertificateDetails} key=${domain} domain=${domain} query=${query} />`
    : html`<${CertificateList} key=${`from:${from}`} from=${from} />`;
}

// Resolution of each deployment against its backend: version, run command,
// parameters, environment, framework, and the checks that span sections.

#include <algorithm>
#include <string>
#include <vector>

#include "config/command.hpp"
#include "config/sections.hpp"

namespace modelgate::config::detail {

namespace {

// Strings that are split or rendered later, with the key path they came from,
// so that an error points at the text the user has to change.
struct TemplateSource {
  std::string key_path;
  std::vector<std::string> words;
};

std::vector<std::string> names_of_versions(const Backend& backend) {
  std::vector<std::string> names;
  for (const auto& [version, config] : backend.version_configs) {
    names.push_back(version);
  }
  return names;
}

// Picks the version: the default_version when it names an entry, else the
// highest version by compare_versions().
std::string choose_default_version(const Backend& backend) {
  if (backend.default_version &&
      backend.version_configs.count(*backend.default_version) != 0) {
    return *backend.default_version;
  }

  std::string highest;
  for (const auto& [version, config] : backend.version_configs) {
    if (highest.empty() || compare_versions(version, highest) > 0) {
      highest = version;
    }
  }
  return highest;
}

void resolve_version(const Reader& reader, const Backend& backend,
                     const std::string& path, Deployment& deployment) {
  if (!deployment.backend_version) {
    deployment.resolved_version = choose_default_version(backend);
    return;
  }

  const std::string& version = *deployment.backend_version;
  const std::string version_path = path + ".backend_version";
  const Location location = reader.location_of(version_path);
  if (backend.version_configs.empty()) {
    reader.fail(location, version_path,
                "backend \"" + backend.backend_name +
                    "\" has no version_configs, so it has no version \"" +
                    version + "\"",
                "Remove backend_version, or add version \"" + version +
                    "\" to the version_configs of backend \"" +
                    backend.backend_name + "\"");
  }
  if (backend.version_configs.count(version) == 0) {
    // No "did you mean": versions one edit apart are different releases.
    reader.fail(
        location, version_path,
        "version \"" + version +
            "\" is not in the version_configs of backend \"" +
            backend.backend_name + "\"",
        "Use one of the versions: " + join_names(names_of_versions(backend)));
  }
  deployment.resolved_version = version;
}

// Fills the version, command, environment, framework, image and health check
// path from the backend. Returns the command words with their key paths.
std::vector<TemplateSource> resolve_from_backend(const Reader& reader,
                                                 const Backend& backend,
                                                 std::size_t backend_index,
                                                 const std::string& path,
                                                 Deployment& deployment) {
  resolve_version(reader, backend, path, deployment);

  const std::string backend_path = index_path("backends", backend_index);
  const VersionConfig* version = nullptr;
  std::string version_path;
  if (!deployment.resolved_version.empty()) {
    version = &backend.version_configs.at(deployment.resolved_version);
    version_path = quoted_key_path(backend_path + ".version_configs",
                                   deployment.resolved_version);
  }

  // An empty string counts as not set, so that the backend's default applies.
  std::vector<TemplateSource> sources;
  if (version && !version->entrypoint.empty()) {
    sources.push_back({version_path + ".entrypoint",
                       split_command_line(version->entrypoint)});
  } else if (!backend.default_entrypoint.empty()) {
    sources.push_back({backend_path + ".default_entrypoint",
                       split_command_line(backend.default_entrypoint)});
  }

  if (version && !version->run_command.empty()) {
    sources.push_back({version_path + ".run_command",
                       split_command_line(version->run_command)});
  } else if (!backend.default_run_command.empty()) {
    sources.push_back({backend_path + ".default_run_command",
                       split_command_line(backend.default_run_command)});
  } else {
    const std::string where =
        version ? "run_command in " + version_path + ", or " : "";
    reader.fail(
        reader.location_of(path + ".backend"), path + ".backend",
        "backend \"" + backend.backend_name + "\"" +
            (version ? " version \"" + deployment.resolved_version + "\""
                     : "") +
            " has no run command",
        "Set " + where + "default_run_command in " + backend_path);
  }

  if (sources.size() == 2) {
    deployment.entrypoint_words = sources.front().words.size();
  }
  for (const TemplateSource& source : sources) {
    deployment.command_template.insert(deployment.command_template.end(),
                                       source.words.begin(),
                                       source.words.end());
  }
  if (deployment.command_template.empty()) {
    const std::string& source_path = sources.back().key_path;
    reader.fail(
        reader.location_of(source_path), source_path,
        "the run command of deployment \"" + deployment.name + "\" is empty",
        "Write the command that starts the model server");
  }

  deployment.effective_env = backend.default_env;
  if (version) {
    for (const auto& [key, value] : version->env) {
      deployment.effective_env[key] = value;
    }
    deployment.framework = version->custom_framework;
    deployment.image_name = version->image_name;
  }
  deployment.health_check_path = backend.health_check_path;
  return sources;
}

// Fails on a placeholder that is neither a template variable nor a key of
// the effective environment, and on {{model_path}} without a model_path.
void check_placeholders(const Reader& reader,
                        const std::vector<TemplateSource>& sources,
                        const std::string& path, const Deployment& deployment) {
  std::vector<std::string> allowed = template_variables();
  for (const auto& [key, value] : deployment.effective_env) {
    allowed.push_back(key);
  }

  for (const TemplateSource& source : sources) {
    for (const std::string& word : source.words) {
      for (const std::string& name : template_placeholders(word)) {
        if (name == "model_path" && deployment.model_path.empty()) {
          reader.fail(deployment.location, path + ".model_path",
                      "the run command uses {{model_path}}, but model_path is "
                      "not set",
                      "Set model_path to the model's file or directory");
        }
        if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) {
          continue;
        }

        const std::string suggestion = closest_name(name, allowed);
        std::string fix = "Use one of the template variables " +
                          join_names(template_variables()) +
                          ", or a key of the deployment's env";
        if (!suggestion.empty()) {
          fix = "Did you mean {{" + suggestion + "}}? " + fix;
        }
        reader.fail(reader.location_of(source.key_path), source.key_path,
                    "unknown template variable {{" + name +
                        "}} in the command of deployment \"" + deployment.name +
                        "\"",
                    fix);
      }
    }
  }
}

void check_framework(const Reader& reader, const Config& config,
                     const std::string& path, const Deployment& deployment) {
  if (deployment.framework.empty()) {
    return;
  }

  const auto offers = [&](const Worker& worker) {
    return std::find(worker.frameworks.begin(), worker.frameworks.end(),
                     deployment.framework) != worker.frameworks.end();
  };
  const std::string needed_by = "backend \"" + deployment.backend +
                                "\" version \"" + deployment.resolved_version +
                                "\"";

  if (const Worker* worker = config.find_worker(deployment.worker)) {
    if (!offers(*worker)) {
      reader.fail(
          reader.location_of(path + ".worker"), path + ".worker",
          "worker \"" + worker->name + "\" does not offer framework \"" +
              deployment.framework + "\", which " + needed_by + " needs",
          "Add " + deployment.framework + " to the frameworks of worker \"" +
              worker->name + "\", or pin a worker that offers it");
    }
    return;
  }

  if (std::none_of(config.workers.begin(), config.workers.end(), offers)) {
    reader.fail(reader.location_of(path + ".backend"), path + ".backend",
                "no worker offers framework \"" + deployment.framework +
                    "\", which " + needed_by + " needs",
                "Add it to a worker's frameworks");
  }
}

// Checks what the worker that runs the deployment needs: an image for
// runtime: docker, and pull_policy only there.
void check_runtime_needs(const Reader& reader, const Config& config,
                         const std::string& path,
                         const Deployment& deployment) {
  const Worker* worker = config.place(deployment);
  if (worker == nullptr) {
    return;
  }

  if (worker->runtime == "docker" && deployment.image_name.empty()) {
    const std::string where =
        deployment.backend == "custom"
            ? "Set image_name in " + path
            : "Set image_name in version \"" + deployment.resolved_version +
                  "\" of backend \"" + deployment.backend + "\"";
    reader.fail(reader.location_of(path + ".backend"), path + ".backend",
                "deployment \"" + deployment.name + "\" runs on worker \"" +
                    worker->name +
                    "\" with runtime: docker, but has no image_name",
                where + ", or pin a worker with runtime: process");
  }
  if (worker->runtime != "docker" && deployment.pull_policy) {
    const std::string key_path = path + ".pull_policy";
    reader.fail(reader.location_of(key_path), key_path,
                "pull_policy is set, but deployment \"" + deployment.name +
                    "\" runs on worker \"" + worker->name +
                    "\" with runtime: " + worker->runtime,
                "Remove pull_policy, or pin a worker with runtime: docker");
  }
}

const Backend& find_backend(const Reader& reader, const Config& config,
                            const std::string& path,
                            const Deployment& deployment,
                            std::size_t& backend_index) {
  for (std::size_t i = 0; i < config.backends.size(); ++i) {
    if (config.backends[i].backend_name == deployment.backend) {
      backend_index = i;
      return config.backends[i];
    }
  }

  std::vector<std::string> names;
  for (const Backend& backend : config.backends) {
    names.push_back(backend.backend_name);
  }
  const std::string suggestion = closest_name(deployment.backend, names);
  names.push_back("custom");
  std::string fix = "Use one of: " + join_names(names);
  if (!suggestion.empty()) {
    fix = "Did you mean \"" + suggestion + "\"? " + fix;
  }
  reader.fail(reader.location_of(path + ".backend"), path + ".backend",
              "unknown backend \"" + deployment.backend + "\"", fix);
}

void resolve_deployment(const Reader& reader, const Config& config,
                        std::size_t index, Deployment& deployment) {
  const std::string path = index_path("deployments", index);

  if (!deployment.worker.empty() && !config.find_worker(deployment.worker)) {
    std::vector<std::string> names;
    for (const Worker& worker : config.workers) {
      names.push_back(worker.name);
    }
    reader.fail(reader.location_of(path + ".worker"), path + ".worker",
                "unknown worker \"" + deployment.worker + "\"",
                "Use one of the workers: " + join_names(names));
  }

  // The command, and the backend's parameters unless the deployment has its
  // own.
  std::vector<TemplateSource> sources;
  std::string parameters_path = path + ".backend_parameters";
  if (deployment.backend == "custom") {
    // The reader has split the deployment's own run_command already.
    sources.push_back({path + ".run_command", deployment.command_template});
  } else {
    std::size_t backend_index = 0;
    const Backend& backend =
        find_backend(reader, config, path, deployment, backend_index);
    sources =
        resolve_from_backend(reader, backend, backend_index, path, deployment);
    if (!deployment.backend_parameters) {
      deployment.parameters = backend.default_backend_param;
      parameters_path =
          index_path("backends", backend_index) + ".default_backend_param";
    }
  }
  if (deployment.backend_parameters) {
    deployment.parameters = *deployment.backend_parameters;
  }
  for (std::size_t i = 0; i < deployment.parameters.size(); ++i) {
    sources.push_back(
        {index_path(parameters_path, i), {deployment.parameters[i]}});
  }

  // The deployment's own env comes last and wins.
  for (const auto& [key, value] : deployment.env) {
    deployment.effective_env[key] = value;
  }

  check_placeholders(reader, sources, path, deployment);
  check_framework(reader, config, path, deployment);
  check_runtime_needs(reader, config, path, deployment);
}

}  // namespace

void resolve_deployments(const Reader& reader, Config& config) {
  for (std::size_t i = 0; i < config.deployments.size(); ++i) {
    resolve_deployment(reader, config, i, config.deployments[i]);
  }
}

}  // namespace modelgate::config::detail

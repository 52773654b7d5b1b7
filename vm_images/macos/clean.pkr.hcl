# A clean macOS base image for the portability harness, built from a Cirrus Labs *vanilla* image
# (untouched macOS: no Homebrew, no Xcode, no Command Line Tools, no guest agent).
#
#   packer init clean.pkr.hcl
#   packer build -var macos=sequoia -var public_key_file=$HOME/.ssh/harness.pub clean.pkr.hcl
#
# Produces the local tart VM "macos-<macos>-clean", the image name the suite and the nightly
# workflow pass as --image. See README.md beside this file.

packer {
  required_plugins {
    tart = {
      version = ">= 1.12.0"
      source  = "github.com/cirruslabs/tart"
    }
  }
}

variable "macos" {
  type        = string
  default     = "sequoia"
  description = "tahoe | sequoia | sonoma: picks ghcr.io/cirruslabs/macos-<macos>-vanilla"
}

variable "base_tag" {
  type    = string
  default = "latest"
}

variable "public_key_file" {
  type        = string
  description = "OpenSSH public key authorised for user admin (for operators; the harness logs in with admin/admin once and installs a per-run key)"
}

variable "disk_size_gb" {
  type    = number
  default = 60
}

locals {
  image_name = "macos-${var.macos}-clean"
}

source "tart-cli" "clean" {
  vm_base_name = "ghcr.io/cirruslabs/macos-${var.macos}-vanilla:${var.base_tag}"
  vm_name      = local.image_name
  cpu_count    = 4
  memory_gb    = 8
  disk_size_gb = var.disk_size_gb
  headless     = true
  ssh_username = "admin"
  ssh_password = "admin"
  ssh_timeout  = "180s"
}

build {
  sources = ["source.tart-cli.clean"]

  provisioner "file" {
    source      = var.public_key_file
    destination = "/tmp/harness.pub"
  }

  provisioner "shell" {
    # admin's password is still "admin": sudo -S reads it once to allow passwordless sudo,
    # which the harness needs to run installers non-interactively (Machine.sudo uses sudo -n).
    inline = [
      "umask 077 && mkdir -p ~/.ssh && cat /tmp/harness.pub >> ~/.ssh/authorized_keys && rm /tmp/harness.pub",
      "echo admin | sudo -S -p '' sh -c \"echo 'admin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/admin-nopasswd && chmod 0440 /etc/sudoers.d/admin-nopasswd\"",
      "sudo -n systemsetup -setremotelogin on || true",
      # Quiet background work that would skew timings: Spotlight indexing, automatic updates.
      "sudo -n mdutil -a -i off",
      "sudo -n softwareupdate --schedule off",
    ]
  }

  provisioner "shell" {
    # Refuse to produce an image that is not clean: the suite's checks rely on all of these.
    script = "${path.root}/verify-clean.sh"
  }
}
